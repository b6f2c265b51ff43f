"""Evaluation on real, human-labelled test sets: the teacher against its students, synthetic against human data.

- :mod:`~hfsynth.evaluation.runner`: classifies the test sets with the teacher and every student run;
- :mod:`~hfsynth.evaluation.bootstrap`: confidence intervals and paired comparisons from the test predictions;
- :mod:`~hfsynth.evaluation.summary`: means over seeds, intervals and verdicts, i.e. the results file;
- :mod:`~hfsynth.evaluation.results`: the results file's typed records, which cards, report and Space read;
- :mod:`~hfsynth.evaluation.report` and :mod:`~hfsynth.evaluation.plots`: ``report.md`` and the PNG plots.

The runner's names are imported when first used: a reader of the results (the command line, the Space) should not
load the models and libraries the runner needs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LATENCY_TEXTS", "run_evaluation"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hfsynth.evaluation import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'hfsynth.evaluation' has no attribute {name!r}")
