"""Scores against values worked out by hand."""

from __future__ import annotations

import pytest

from hfsynth.metrics import UNPARSEABLE, classification_scores


def test_scores_of_six_predictions_match_the_hand_computed_values() -> None:
    gold = ["a", "a", "b", "b", "c", "c"]
    predicted = ["a", "b", "b", "b", "c", "a"]
    scores = classification_scores(gold, predicted, ["a", "b", "c"])
    # a: 1 of 2 predictions right, 1 of 2 found -> F1 1/2; b: 2 of 3, 2 of 2 -> 4/5; c: 1 of 1, 1 of 2 -> 2/3.
    assert scores["per_label"]["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert scores["per_label"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert scores["per_label"]["c"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert scores["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # 0.6556
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["n"] == 6 and scores["unparseable"] == 0.0
    assert scores["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 1]]}


def test_an_unparseable_answer_counts_as_wrong_and_gets_its_own_column() -> None:
    scores = classification_scores(["a", "b", "b", "a"], ["a", None, "b", "a"], ["a", "b"])
    # a: 2 of 2 right -> F1 1; b: 1 of 1 predicted right, 1 of 2 found -> F1 2/3. Macro over the labels only.
    assert scores["macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert scores["accuracy"] == pytest.approx(3 / 4)
    assert scores["unparseable"] == pytest.approx(1 / 4)
    assert scores["confusion_matrix"] == {
        "labels": ["a", "b", UNPARSEABLE],
        "matrix": [[2, 0, 0], [0, 1, 1], [0, 0, 0]],  # rows: gold a, b (and a never-gold UNPARSEABLE row)
    }


def test_macro_f1_averages_over_the_labels_that_occur() -> None:
    scores = classification_scores(["a", "b"], ["a", "b"], ["a", "b", "c"])
    assert scores["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores["macro_f1"] == 1.0  # "c" neither in the test set nor predicted: no zero added
    # A label predicted but absent from the test set does count. a: F1 1; b: 1 of 1 right, 1 of 2 found -> 2/3;
    # c: predicted once, never right -> 0.
    wrong = classification_scores(["a", "b", "b"], ["a", "b", "c"], ["a", "b", "c"])
    assert wrong["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        classification_scores(["a", "b"], ["a"], ["a", "b"])
