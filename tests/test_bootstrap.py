"""Bootstrap intervals on small fixed predictions whose answers are known."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hfsynth.evaluation.bootstrap import (
    Predictions,
    interval,
    mean_resampled_scores,
    paired_difference,
    ratio_interval,
    resample_indices,
    resampled_scores,
    verdict,
)
from hfsynth.metrics import classification_scores

LABELS = ["a", "b", "c"]


def random_predictions(size: int, seed: int, accuracy: float) -> tuple[list[str], list[str | None]]:
    rng = random.Random(seed)
    gold = [rng.choice(LABELS) for _ in range(size)]
    predicted = [label if rng.random() < accuracy else rng.choice([*LABELS, None]) for label in gold]
    return gold, predicted


def test_the_unresampled_scores_are_the_metrics_scores() -> None:
    for seed in range(5):
        gold, predicted = random_predictions(40, seed, 0.6)
        identity = np.arange(len(gold))[None, :]
        scores = resampled_scores(Predictions.of(gold, predicted, LABELS), identity)
        expected = classification_scores(gold, predicted, LABELS)
        assert scores["macro_f1"][0] == pytest.approx(expected["macro_f1"])
        assert scores["accuracy"][0] == pytest.approx(expected["accuracy"])


def test_identical_predictions_give_a_zero_width_difference() -> None:
    gold, predicted = random_predictions(120, 1, 0.7)
    indices = resample_indices(len(gold), 1000, seed=0)
    first = resampled_scores(Predictions.of(gold, predicted, LABELS), indices)
    second = resampled_scores(Predictions.of(gold, list(predicted), LABELS), indices)
    comparison = paired_difference(first, second)
    assert comparison["macro_f1"] == {"ci": [0.0, 0.0], "verdict": "no clear difference"}
    assert comparison["accuracy"]["ci"] == [0.0, 0.0]
    # Unpaired, each model's own interval is wide: 120 texts cannot pin a score down.
    low, high = interval(first["accuracy"])
    assert 0.1 < high - low < 0.25


def test_a_clear_gap_is_better_or_worse_and_a_tiny_one_is_no_clear_difference() -> None:
    gold = [LABELS[index % 3] for index in range(150)]
    perfect = list(gold)
    half = [label if index % 2 else None for index, label in enumerate(gold)]
    one_off = [LABELS[(LABELS.index(label) + 1) % 3] if index == 0 else label for index, label in enumerate(gold)]
    indices = resample_indices(len(gold), 1000, seed=3)
    scores = {name: resampled_scores(Predictions.of(gold, predicted, LABELS), indices)
              for name, predicted in (("perfect", perfect), ("half", half), ("one_off", one_off))}
    assert paired_difference(scores["perfect"], scores["half"])["accuracy"]["verdict"] == "better"
    assert paired_difference(scores["half"], scores["perfect"])["macro_f1"]["verdict"] == "worse"
    # One text in 150 differs: the interval of the difference still holds zero.
    assert paired_difference(scores["perfect"], scores["one_off"])["accuracy"]["verdict"] == "no clear difference"
    assert verdict([0.01, 0.2]) == "better" and verdict([-0.2, -0.01]) == "worse" and verdict([0.0, 0.1]) == (
        "no clear difference")


def test_resamples_are_seeded_and_repeats_are_averaged() -> None:
    assert (resample_indices(50, 10, seed=7) == resample_indices(50, 10, seed=7)).all()
    assert not (resample_indices(50, 10, seed=7) == resample_indices(50, 10, seed=8)).all()
    gold = ["a", "b"] * 10
    right, wrong = Predictions.of(gold, gold, LABELS), Predictions.of(gold, ["c"] * 20, LABELS)
    indices = resample_indices(20, 100, seed=0)
    mean = mean_resampled_scores([right, wrong], indices)
    assert mean["accuracy"] == pytest.approx(np.full(100, 0.5))


def test_ratio_interval() -> None:
    assert ratio_interval(np.array([0.5, 0.6, 0.7]), np.array([1.0, 1.0, 1.0]), confidence=0.5) == pytest.approx(
        [0.55, 0.65])
    assert ratio_interval(np.ones(10), np.zeros(10)) is None
