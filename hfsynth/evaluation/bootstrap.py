"""Bootstrap confidence intervals from test predictions: is a difference real, or noise of a small test set?

Test sets of 100-200 texts per language make a 0.03 macro-F1 gap meaningless; these intervals say so. Every
function resamples the test texts with replacement (the same resamples for every model of a language, seeded, so a
comparison is paired and a re-run gives the same numbers) and computes the scores of all resamples at once with
numpy: 1000 resamples of 200 texts take milliseconds.

Scores match :func:`hfsynth.metrics.classification_scores`: a missing prediction (``None``, the teacher gave no
label) is wrong, and macro-F1 averages over the labels that occur in the resample's gold or predicted labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hfsynth.runs.records import Verdict

RESAMPLES = 1000
CONFIDENCE = 0.95
METRICS = ("macro_f1", "accuracy")



@dataclass(frozen=True)
class Predictions:
    """One model's predictions on one test set, as label indices; ``len(labels)`` stands for "no label"."""

    gold: np.ndarray
    predicted: np.ndarray
    label_count: int

    @classmethod
    def of(cls, gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]) -> Predictions:
        if len(gold) != len(predicted):
            raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
        index = {label: position for position, label in enumerate(labels)}
        missing = len(labels)
        return cls(np.array([index[label] for label in gold], dtype=np.int64),
                   np.array([index.get(label, missing) if label is not None else missing for label in predicted],
                            dtype=np.int64),
                   len(labels))


def resample_indices(size: int, resamples: int = RESAMPLES, seed: int | Sequence[int] = 0) -> np.ndarray:
    """``(resamples, size)`` indices into a test set, drawn with replacement; the same for the same seed (an int or
    a sequence of ints, e.g. the evaluation seed and a number standing for the language)."""
    return np.random.default_rng(seed).integers(0, size, size=(resamples, size))


def resampled_scores(predictions: Predictions, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Macro-F1 and accuracy of every resample (rows of ``indices``), vectorised over the resamples."""
    resamples, size = indices.shape
    columns = predictions.label_count + 1  # the last column: no label
    gold = predictions.gold[indices]
    predicted = predictions.predicted[indices]
    offset = (np.arange(resamples) * columns)[:, None]
    correct = gold == predicted

    def per_label(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        counts = np.bincount((offset + values).ravel(), weights=None if weights is None else weights.ravel(),
                             minlength=resamples * columns)
        return counts.reshape(resamples, columns)[:, : predictions.label_count]

    true_positives = per_label(gold, correct.astype(np.float64))
    support = per_label(gold)
    predicted_counts = per_label(predicted)
    # F1 = 2 TP / (gold count + predicted count): the same as 2PR/(P+R), and 0 where the label never occurs.
    denominator = support + predicted_counts
    f1 = np.divide(2 * true_positives, denominator, out=np.zeros(denominator.shape), where=denominator > 0)
    occurring = denominator > 0
    macro_f1 = f1.sum(axis=1) / np.maximum(occurring.sum(axis=1), 1)
    return {"macro_f1": macro_f1, "accuracy": correct.mean(axis=1)}


def mean_resampled_scores(repeats: Sequence[Predictions], indices: np.ndarray) -> dict[str, np.ndarray]:
    """The mean over seed repeats of each resample's scores: the interval of a score reported as a mean over seeds."""
    per_repeat = [resampled_scores(predictions, indices) for predictions in repeats]
    return {metric: np.mean([scores[metric] for scores in per_repeat], axis=0) for metric in METRICS}


def interval(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """The percentile interval ``[low, high]`` holding ``confidence`` of ``values`` (NaNs ignored)."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def verdict(difference_interval: Sequence[float]) -> Verdict:
    """``better`` only when the whole interval of (model - other) is above zero, ``worse`` when below."""
    low, high = difference_interval
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no clear difference"


def paired_difference(
    first: dict[str, np.ndarray], second: dict[str, np.ndarray], confidence: float = CONFIDENCE
) -> dict[str, dict[str, object]]:
    """Per metric, the interval of ``first - second`` over the same resamples, and its verdict."""
    comparison: dict[str, dict[str, object]] = {}
    for metric in METRICS:
        difference = interval(first[metric] - second[metric], confidence)
        comparison[metric] = {"ci": difference, "verdict": verdict(difference)}
    return comparison


def ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, confidence: float = CONFIDENCE
) -> list[float] | None:
    """The interval of ``numerator / denominator`` over the same resamples; ``None`` when the denominator is often 0
    (in more resamples than the interval may leave out)."""
    valid = denominator > 0
    if valid.mean() < confidence:
        return None
    return interval(np.where(valid, numerator / np.where(valid, denominator, 1.0), np.nan), confidence)
