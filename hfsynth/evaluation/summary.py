"""From scored runs to the results: means over seed repeats, bootstrap intervals, and the verdicts cards, report,
Space and benchmarks all read.

Per (model, kind, training data, language, training size): the mean and standard deviation over the seed repeats,
and a bootstrap interval of that mean over the test texts (:mod:`hfsynth.evaluation.bootstrap`). Each student on all
its data is compared, on the same resampled texts, with the teacher and (trained on synthetic data) with itself
trained on as much real data: "beats the teacher" only where the interval of the difference is above zero.
"""

from __future__ import annotations

import statistics
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from hfsynth.evaluation.bootstrap import (
    METRICS,
    Predictions,
    interval,
    mean_resampled_scores,
    paired_difference,
    ratio_interval,
    resample_indices,
)
from hfsynth.evaluation.results import EvaluationResults, ResultRow
from hfsynth.realdata import TestSet
from hfsynth.recipe.schema import Recipe
from hfsynth.runs.records import FeedbackReport, HumanReference, QualityReport, Verdict

#: The verdicts in words; anything else is "no clear difference".
_STATEMENTS = {
    "teacher": {"better": "beats the teacher", "worse": "below the teacher"},
    "human data": {"better": "beats human data", "worse": "below human data"},
}
NO_CLEAR_DIFFERENCE = "no clear difference"


@dataclass(frozen=True)
class ScoredRun:
    """One model run on one language's test set: its results row and its prediction for each test text."""

    row: ResultRow
    predicted: list[str | None]


class GroupKey(NamedTuple):
    role: str
    model: str
    kind: str
    data: str | None
    language: str
    train_size: int | None


def statement(verdict: Verdict, against: str) -> str:
    return _STATEMENTS[against].get(verdict, NO_CLEAR_DIFFERENCE)


def mean_of_present(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present else None


def _entry(key: GroupKey, group: Sequence[ScoredRun]) -> dict[str, Any]:
    """Mean and standard deviation over the seed repeats; the confusion matrix is the first repeat's (for the main
    run: the published student's)."""
    rows = [run.row for run in group]
    entry: dict[str, Any] = {"model": key.model, "role": key.role, "kind": key.kind, "data": key.data,
                             "language": key.language, "train_size": key.train_size, "n": rows[0].n,
                             "repeats": len(rows)}
    if key.data is None:
        del entry["data"]
    for metric in METRICS:
        values = [getattr(row, metric) for row in rows]
        entry[metric] = statistics.fmean(values)
        entry[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    for field in ("train_examples_per_label", "unparseable", "texts_per_s", "latency_ms"):
        if field in rows[0].model_fields_set:
            entry[field] = mean_of_present(getattr(row, field) for row in rows)
    entry["per_label_f1"] = {label: statistics.fmean(row.per_label[label].f1 for row in rows)
                             for label in rows[0].per_label}
    entry["confusion_matrix"] = rows[0].confusion_matrix
    return entry


def _comparison(
    entry: dict[str, Any], scores: dict[str, np.ndarray], other: dict[str, Any], other_scores: dict[str, np.ndarray],
    against: str, confidence: float,
) -> dict[str, Any]:
    difference = paired_difference(scores, other_scores, confidence)
    verdict = difference["macro_f1"]["verdict"]
    return {
        "against": against,
        "against_macro_f1": other["macro_f1"],
        "against_macro_f1_ci": other["macro_f1_ci"],
        "ratio": entry["macro_f1"] / other["macro_f1"] if other["macro_f1"] > 0 else None,
        "ratio_ci": ratio_interval(scores["macro_f1"], other_scores["macro_f1"], confidence),
        "macro_f1_difference": entry["macro_f1"] - other["macro_f1"],
        "macro_f1_difference_ci": difference["macro_f1"]["ci"],
        "accuracy_difference": entry["accuracy"] - other["accuracy"],
        "accuracy_difference_ci": difference["accuracy"]["ci"],
        "verdict": verdict,
        "statement": statement(verdict, against),  # type: ignore[arg-type]
    }


def build_results(
    recipe: Recipe,
    scored: Sequence[ScoredRun],
    test_sets: Sequence[TestSet],
    teacher_model: str,
    quality: QualityReport | None = None,
    feedback: FeedbackReport | None = None,
    human_reference: HumanReference | None = None,
) -> EvaluationResults:
    """The results file's content from every scored run (teacher rows first)."""
    settings = recipe.evaluation
    labels = recipe.label_names
    gold = {test_set.language: test_set.labels for test_set in test_sets}
    # The same resamples for every model of a language: comparisons are paired. Seeded per language by name, so
    # adding a language leaves the others' intervals as they were.
    indices = {language: resample_indices(len(labels_), settings.bootstrap_resamples,
                                          seed=(settings.seed, zlib.crc32(language.encode())))
               for language, labels_ in gold.items()}

    groups: dict[GroupKey, list[ScoredRun]] = defaultdict(list)
    for run in scored:
        row = run.row
        groups[GroupKey(row.role, row.model, row.kind, row.data, row.language, row.train_size)].append(run)
    entries: dict[GroupKey, dict[str, Any]] = {}
    resampled: dict[GroupKey, dict[str, np.ndarray]] = {}
    for key, group in groups.items():
        entry = _entry(key, group)
        scores = mean_resampled_scores([Predictions.of(gold[key.language], run.predicted, labels) for run in group],
                                       indices[key.language])
        for metric in METRICS:
            entry[f"{metric}_ci"] = interval(scores[metric], settings.confidence)
        entries[key], resampled[key] = entry, scores

    teachers = {key.language: key for key in entries if key.role == "teacher"}
    comparisons = []
    for key, entry in entries.items():
        if key.role != "student" or key.train_size is not None or key.data == "synthetic-at-human-size":
            continue
        teacher = teachers.get(key.language)
        if teacher is not None:
            entry["vs_teacher"] = _comparison(entry, resampled[key], entries[teacher], resampled[teacher], "teacher",
                                              settings.confidence)
        human, equal = key._replace(data="human"), key._replace(data="synthetic-at-human-size")
        if key.data == "synthetic" and human in entries:
            # Human data is compared with synthetic data of its own size: the same student on a synthetic subsample
            # where the human pool was the smaller, else on all the synthetic data (then of the same size).
            same_size = equal if equal in entries else key
            entries[same_size]["vs_human"] = _comparison(entries[same_size], resampled[same_size], entries[human],
                                                         resampled[human], "human data", settings.confidence)
            comparisons.append(_synthetic_vs_human(entries[same_size], entries[human],
                                                   entry if same_size != key else None))

    return EvaluationResults.model_validate({
        "recipe": recipe.name,
        "labels": labels,
        "languages": [test_set.language for test_set in test_sets],
        "teacher": {"model": teacher_model,
                    "mode": scored[0].row.kind,
                    "demonstrations_per_label": settings.teacher_examples_per_label},
        "rows": [run.row for run in scored],
        # The teacher and the students on all their data (synthetic, and human for the reference runs).
        "summary": [entry for key, entry in entries.items() if key.train_size is None],
        "learning_curve": sorted((entry for key, entry in entries.items()
                                  if key.role == "student" and key.data != "synthetic-at-human-size"),
                                 key=lambda entry: (entry["model"], entry.get("data") or "", entry["language"],
                                                    entry["train_examples_per_label"])),
        "bootstrap": {"resamples": settings.bootstrap_resamples, "confidence": settings.confidence,
                      "seed": settings.seed},
        "synthetic_vs_human": comparisons,
        "quality": quality.to_json() if quality is not None else None,
        **({"reference_pool": human_reference.to_json()} if human_reference is not None else {}),
        **({"feedback": feedback.to_json()} if feedback is not None else {}),
    })


def _synthetic_vs_human(synthetic: dict[str, Any], human: dict[str, Any], full: dict[str, Any] | None
                        ) -> dict[str, Any]:
    """``synthetic``: the student on synthetic data of the human data's size; ``full``: on all of it, when that is
    more."""
    larger = {} if full is None else {
        "full_synthetic_macro_f1": full["macro_f1"],
        "full_synthetic_macro_f1_ci": full["macro_f1_ci"],
        "full_synthetic_examples_per_label": full.get("train_examples_per_label"),
    }
    return larger | {
        "student": synthetic["model"],
        "kind": synthetic["kind"],
        "language": synthetic["language"],
        "synthetic_macro_f1": synthetic["macro_f1"],
        "synthetic_macro_f1_ci": synthetic["macro_f1_ci"],
        "human_macro_f1": human["macro_f1"],
        "human_macro_f1_ci": human["macro_f1_ci"],
        "synthetic_examples_per_label": synthetic.get("train_examples_per_label"),
        "human_examples_per_label": human.get("train_examples_per_label"),
        "comparison": synthetic["vs_human"],
    }
