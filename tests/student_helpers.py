"""Small real data for the student and evaluation tests: a synthetic dataset in the fixed schema, built from the
real SIB-200 training sentences (3 of its 7 topics, English and German), and SIB-200 test sets for those topics."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
from transformers import TrainerCallback

from hfsynth.generation.samples import features
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import parse_recipe

SIB200 = Path(__file__).resolve().parent.parent / "data" / "sib200"
LABELS = ["science/technology", "travel", "politics"]
LANGUAGES = {"en": "eng_Latn", "de": "deu_Latn"}


def sib200_rows(language: str, split: str) -> list[dict[str, str]]:
    with (SIB200 / LANGUAGES[language] / f"{split}.jsonl").open(encoding="utf-8") as handle:
        return [row for row in map(json.loads, handle) if row["label"] in LABELS]


def synthetic_dataset(per_label: int = 4, languages: tuple[str, ...] = ("en", "de")) -> datasets.DatasetDict:
    """``per_label`` texts per (language, label), in the schema ``hfsynth.dataset`` writes."""
    columns: dict[str, list[Any]] = defaultdict(list)
    for language in languages:
        taken: dict[str, int] = defaultdict(int)
        for row in sib200_rows(language, "train"):
            if taken[row["label"]] < per_label:
                taken[row["label"]] += 1
                columns["text"].append(row["text"])
                columns["label"].append(row["label"])
                columns["language"].append(language)
                columns["teacher"].append("test/teacher")
                columns["strategy"].append("zero-shot")
                columns["prompt_id"].append(f"{language}/{row['label']}/0")
    train = datasets.Dataset.from_dict(dict(columns), features=features(LABELS))
    return datasets.DatasetDict({"train": train, "validation": train.select(range(2))})


def write_test_set(directory: Path, language: str) -> Path:
    """The real SIB-200 test sentences of the three topics, as a JSON Lines file."""
    path = directory / f"sib200-{language}-test.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in sib200_rows(language, "test"))
    return path


def make_recipe(
    students: Sequence[dict[str, Any]] = (), generation: dict[str, Any] | None = None, **evaluation: Any
) -> Recipe:
    return parse_recipe({
        "name": "topics",
        "task": {"name": "topic", "description": "Classify the topic of a sentence from a travel guide or the news."},
        "labels": [{"name": label} for label in LABELS],
        "languages": list(LANGUAGES),
        "teacher": {"model": "smollm2-135m-instruct"},
        "dataset": {"repo_id": "me/topics"},
        "students": list(students),
        "generation": generation or {},
        "evaluation": evaluation,
    })


class Interrupt(Exception):
    """Stands for a killed process."""


class InterruptAfterSave(TrainerCallback):
    """Stops training right after the checkpoint of ``step`` is written, as a kill at that moment would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if state.global_step == self.step:
            raise Interrupt(f"interrupted after the checkpoint of step {state.global_step}")


class StepRecorder(TrainerCallback):
    """The step a training started from (non-zero after resuming) and the steps it then ran."""

    def __init__(self) -> None:
        self.started_at: int | None = None
        self.steps_run = 0

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.started_at = state.global_step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.steps_run += 1
