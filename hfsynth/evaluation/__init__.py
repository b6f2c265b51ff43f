"""Evaluation on real, human-labelled test sets: the teacher against its students, synthetic against human data.

- :mod:`~hfsynth.evaluation.runner`: classifies the test sets with the teacher and every student run;
- :mod:`~hfsynth.evaluation.bootstrap`: confidence intervals and paired comparisons from the test predictions;
- :mod:`~hfsynth.evaluation.summary`: means over seeds, intervals and verdicts, i.e. the results file;
- :mod:`~hfsynth.evaluation.report` and :mod:`~hfsynth.evaluation.plots`: ``report.md`` and the PNG plots.
"""

from hfsynth.evaluation.runner import LATENCY_TEXTS, run_evaluation

__all__ = ["LATENCY_TEXTS", "run_evaluation"]
