"""Classification scores on real test sets: macro-F1, accuracy, per-label report and confusion matrix (scikit-learn).

A prediction of ``None`` (a teacher answer that named no label) counts as wrong for every score, and shows up as
its own column in the confusion matrix, so a teacher cannot look better by failing to answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

#: Stands for "no label could be read from the answer" in confusion matrices.
UNPARSEABLE = "(unparseable)"


def classification_scores(
    gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]
) -> dict[str, Any]:
    """Scores of ``predicted`` against ``gold`` over ``labels`` (in the recipe's order)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    labels = list(labels)
    predicted = [UNPARSEABLE if label is None else label for label in predicted]
    unparseable = sum(label == UNPARSEABLE for label in predicted)
    # Averaged over the task's labels that occur (as scikit-learn does by default), never over the UNPARSEABLE
    # marker: a label missing from a small test set and never predicted would only add a meaningless zero.
    occurring = [label for label in labels if label in set(gold) | set(predicted)]
    report = classification_report(gold, predicted, labels=labels, output_dict=True, zero_division=0)
    matrix_labels = labels + [UNPARSEABLE] if unparseable else labels
    return {
        "n": len(gold),
        "macro_f1": float(f1_score(gold, predicted, labels=occurring, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(gold, predicted)),
        "unparseable": unparseable / len(gold) if gold else 0.0,
        "per_label": {
            label: {
                "precision": report[label]["precision"],
                "recall": report[label]["recall"],
                "f1": report[label]["f1-score"],
                "support": int(report[label]["support"]),
            }
            for label in labels
        },
        "confusion_matrix": {
            "labels": matrix_labels,  # rows: gold, columns: predicted
            "matrix": confusion_matrix(gold, predicted, labels=matrix_labels).tolist(),
        },
    }
