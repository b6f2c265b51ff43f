"""Students: each kind trains on a tiny synthetic set with an embedded model, predicts over the recipe's labels,
survives save -> load unchanged, resumes from its last checkpoint after a kill, and is not retrained on a re-run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from hfsynth.embedded import resolve_model
from hfsynth.errors import HfsynthError, RecipeError
from hfsynth.runs.folder import CHECKPOINTS_DIR, StudentFolder
from hfsynth.students.base import Student
from hfsynth.training import per_label_subset, planned_runs, train_students
from tests.student_helpers import (
    LABELS,
    Interrupt,
    InterruptAfterSave,
    StepRecorder,
    make_recipe,
    sib200_rows,
    synthetic_dataset,
)

TEST_ROWS = sib200_rows("en", "test")[:4] + sib200_rows("de", "test")[:2]
TEST_TEXTS = [row["text"] for row in TEST_ROWS]
TEST_LANGUAGES = ["en"] * 4 + ["de"] * 2

SETFIT = {"name": "setfit", "kind": "setfit", "model": "all-minilm-l6-v2",
          "params": {"num_iterations": 1, "batch_size": 8}}
ENCODER = {"name": "encoder", "kind": "encoder", "model": "all-minilm-l6-v2",
           "params": {"num_epochs": 1, "batch_size": 8}}
SFT = {"name": "sft", "kind": "sft", "model": "smollm2-135m-instruct",
       "params": {"max_steps": 2, "batch_size": 2, "save_steps": 1, "r": 4, "alpha": 8}}
IN_CONTEXT = {"name": "in-context", "kind": "in-context", "model": "smollm2-135m-instruct",
              "params": {"examples_per_label": 1, "selection": "nearest", "embedding_model": "all-minilm-l6-v2"}}


def train_and_check(tmp_path: Path, student: dict) -> Student:
    """Train ``student`` on 4 examples per label and language; check predictions before and after save -> load."""
    recipe = make_recipe([student])
    outcome, = train_students(recipe, synthetic_dataset(per_label=4), tmp_path)
    assert not outcome.skipped
    directory = tmp_path / "students" / student["name"]
    assert outcome.run.directory == directory
    assert not (directory / CHECKPOINTS_DIR).exists()  # only kept while a run is unfinished

    meta = json.loads(StudentFolder(directory).meta.read_text())
    assert meta["kind"] == student["kind"] and meta["labels"] == LABELS
    assert meta["training"]["train_rows"] == 24 and meta["training"]["train_size"] is None
    assert meta["base_model"] in {"sentence-transformers/all-MiniLM-L6-v2", "HuggingFaceTB/SmolLM2-135M-Instruct"}

    loaded = Student.load(directory)
    probabilities = loaded.predict_proba(TEST_TEXTS, TEST_LANGUAGES)
    assert probabilities.shape == (len(TEST_TEXTS), len(LABELS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert set(loaded.predict(TEST_TEXTS, TEST_LANGUAGES)) <= set(LABELS)
    # A second load predicts exactly the same: everything a prediction depends on was saved.
    np.testing.assert_allclose(Student.load(directory).predict_proba(TEST_TEXTS, TEST_LANGUAGES), probabilities,
                               atol=1e-5)

    # A re-run finds the finished student and does not train it again.
    again, = train_students(recipe, synthetic_dataset(per_label=4), tmp_path)
    assert again.skipped
    return loaded


def test_unknown_param_is_one_error_naming_the_field() -> None:
    # Loading the recipe validates every student's params: a typo fails before any training.
    with pytest.raises(RecipeError, match=r"students\[1\]\.params\.learning_rat") as error:
        make_recipe([SETFIT, {**ENCODER, "params": {"num_epochs": 1, "learning_rat": 1e-4}}])
    assert "learning_rate" in str(error.value)  # the known names are listed
    with pytest.raises(RecipeError, match=r"students\[0\]\.params\.r"):
        make_recipe([{**SFT, "params": {"r": 0}}])


def test_learning_curve_runs_and_subsets(tmp_path: Path) -> None:
    recipe = make_recipe([{**SETFIT, "train_sizes": [2, 1], "repeats": 2}])
    runs = planned_runs(recipe, tmp_path)
    assert [(run.train_size, run.repeat) for run in runs] == [(None, 0), (None, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert runs[0].is_main and runs[0].directory == tmp_path / "students" / "setfit"
    assert runs[5].directory == tmp_path / "student_runs" / "setfit" / "2-per-label-seed1"

    train = synthetic_dataset(per_label=4)["train"]
    subset = per_label_subset(train, 2, seed=0)
    cells = [(row["language"], row["label"]) for row in subset]
    assert len(subset) == 12 and all(cells.count(cell) == 2 for cell in set(cells))
    assert per_label_subset(train, 2, seed=0)["text"] == subset["text"]  # reproducible
    assert per_label_subset(train, 2, seed=1)["text"] != subset["text"]  # and different per seed


def test_dataset_with_other_labels_is_refused(tmp_path: Path) -> None:
    recipe = make_recipe([SETFIT])
    recipe = recipe.model_copy(update={"labels": list(reversed(recipe.labels))})
    with pytest.raises(HfsynthError, match="ClassLabel"):
        train_students(recipe, synthetic_dataset(per_label=1), tmp_path)


@pytest.mark.slow
def test_setfit_student(tmp_path: Path) -> None:
    train_and_check(tmp_path, SETFIT)


@pytest.mark.slow
def test_encoder_student(tmp_path: Path) -> None:
    student = train_and_check(tmp_path, ENCODER)
    assert student.model.config.id2label == dict(enumerate(LABELS))


@pytest.mark.slow
def test_sft_student_saves_its_adapter_and_publishes_the_merged_model(tmp_path: Path) -> None:
    student = train_and_check(tmp_path, SFT)
    directory = tmp_path / "students" / "sft"
    adapter_config = json.loads((directory / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert adapter_config["r"] == 4
    # The adapter alone, not a copy of the base model (whose weights are over 100 MB).
    saved = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
    assert not (directory / "config.json").exists() and saved < 20e6

    # What a published repo holds: the folder plus the merged model, which computes what base + adapter computes
    # (merged in float32, so up to float32 rounding) and loads back as the same student.
    release = tmp_path / "release"
    Student.release_any(directory, release)
    assert (release / "adapter" / "adapter_config.json").is_file() and (release / "config.json").is_file()
    assert not (release / CHECKPOINTS_DIR).exists()
    inputs = student.tokenizer(["The election results were announced today."], return_tensors="pt")
    merged = AutoModelForCausalLM.from_pretrained(release, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct"), dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, directory, subfolder="adapter")
    with torch.inference_mode():
        merged_logits, adapted_logits = merged(**inputs).logits, adapted(**inputs).logits
    torch.testing.assert_close(merged_logits, adapted_logits, atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(Student.load(release).predict_proba(TEST_TEXTS, TEST_LANGUAGES),
                               Student.load(directory).predict_proba(TEST_TEXTS, TEST_LANGUAGES), atol=1e-5)


@pytest.mark.slow
def test_in_context_student(tmp_path: Path) -> None:
    student = train_and_check(tmp_path, IN_CONTEXT)
    # The nearest examples of each label, from the text's own language.
    german = TEST_TEXTS[-1]
    demonstrations = student._demonstrations(german, "de", student._embed([german])[0])
    assert sorted(label for _, label in demonstrations) == sorted(LABELS)
    german_pool = {example["text"] for example in student.examples if example["language"] == "de"}
    assert {text for text, _ in demonstrations} <= german_pool


@pytest.mark.slow
@pytest.mark.parametrize("student", [ENCODER, SETFIT, SFT], ids=["encoder", "setfit", "sft"])
def test_killed_training_resumes_from_its_last_checkpoint(tmp_path: Path, student: dict) -> None:
    student = {**student, "params": {**student["params"], "max_steps": 4, "save_steps": 1}}
    recipe = make_recipe([student])
    dataset = synthetic_dataset(per_label=4)
    checkpoints = tmp_path / "students" / student["name"] / CHECKPOINTS_DIR

    with pytest.raises(Interrupt):
        train_students(recipe, dataset, tmp_path, callbacks=[InterruptAfterSave(step=2)])
    assert (checkpoints / "checkpoint-2").is_dir()
    assert not StudentFolder(tmp_path / "students" / student["name"]).meta.exists()

    recorder = StepRecorder()
    outcome, = train_students(recipe, dataset, tmp_path, callbacks=[recorder])
    assert not outcome.skipped
    assert recorder.started_at == 2 and recorder.steps_run == 2  # steps 3 and 4 only: resumed, not restarted
    assert not checkpoints.exists()
    assert Student.load(outcome.run.directory).predict_proba(TEST_TEXTS[:2], TEST_LANGUAGES[:2]).shape == (2, 3)


def test_checkpoints_of_another_configuration_are_not_resumed(tmp_path: Path) -> None:
    stale = tmp_path / "students" / "encoder" / CHECKPOINTS_DIR / "checkpoint-2"
    stale.mkdir(parents=True)
    (stale.parent / "hfsynth_run.txt").write_text("another configuration")
    recipe = make_recipe([{**ENCODER, "params": {**ENCODER["params"], "max_steps": 1}}])
    recorder = StepRecorder()
    train_students(recipe, synthetic_dataset(per_label=1), tmp_path, callbacks=[recorder])
    assert recorder.started_at == 0 and recorder.steps_run == 1
