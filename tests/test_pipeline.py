"""hfsynth.pipeline without models: the stages' checks, cards written from a run's typed files, results read back,
and the orchestrator (``pipeline.run``) over one recipe and over several, one of which fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard

from hfsynth import pipeline
from hfsynth.dataset import load_synthetic_dataset
from hfsynth.engines.base import LocalEngine
from hfsynth.errors import HfsynthError, TeacherError
from hfsynth.recipe.schema import Recipe
from hfsynth.runs.events import RunEvents
from hfsynth.teachers.base import Teacher
from tests.run_helpers import STUDENT, fake_run
from tests.scripted_teacher import ScriptedTeacher
from tests.student_helpers import make_recipe


def test_train_needs_a_dataset(tmp_path: Path) -> None:
    recipe, _ = fake_run(tmp_path)
    with pytest.raises(HfsynthError, match="no synthetic dataset yet: run `hfsynth generate` first"):
        pipeline.train(recipe, tmp_path / "empty-run")


def test_read_results(tmp_path: Path) -> None:
    _, run = fake_run(tmp_path)
    results = pipeline.read_results(run.root)
    assert results is not None and [entry.role for entry in results.headline][:1] == ["teacher"]
    assert pipeline.read_results(tmp_path / "nowhere") is None


def test_write_cards_from_the_run_files(tmp_path: Path) -> None:
    recipe, run = fake_run(tmp_path)
    written = pipeline.write_cards(recipe, run.root)
    student = run.student(STUDENT)
    assert written == [run.dataset.card, student.card]
    assert student.comparison_plot.read_bytes() == run.eval.bars_plot.read_bytes()  # the card shows the copy
    assert f"| {STUDENT} | student | de | 0.650 |" in DatasetCard.load(run.dataset.card).text
    card = ModelCard.load(student.card)
    assert card.data.model_name == f"topics-{STUDENT}" and card.data.eval_results


def test_write_cards_before_evaluation(tmp_path: Path) -> None:
    recipe, run = fake_run(tmp_path, evaluated=False)
    pipeline.write_cards(recipe, run.root)
    assert "Not evaluated yet" in run.student(STUDENT).card.read_text()
    assert not run.student(STUDENT).comparison_plot.exists()


# --- pipeline.run, the orchestrator, in seconds: the local engine with a scripted teacher ----------------------------


class ScriptedEngine(LocalEngine):
    """The local engine, whose teacher is the scripted one; a recipe named ``broken*`` cannot load it."""

    def load_teacher(self, recipe: Recipe) -> Teacher:
        if recipe.name.startswith("broken"):
            raise TeacherError(f"cannot load teacher model {recipe.teacher.model!r}: no such model")
        return ScriptedTeacher()


class Recorded(RunEvents):
    def __init__(self) -> None:
        self.finished_with: dict[str, str | None] = {}

    def finished(self, recipe: Recipe, out_dir: Path, error: HfsynthError | None) -> None:
        self.finished_with[recipe.name] = None if error is None else str(error)


def small_recipe(name: str) -> Recipe:
    return make_recipe(generation={"samples_per_label": 3, "samples_per_call": 3}).model_copy(update={"name": name})


def test_run_one_recipe_writes_its_dataset_in_the_folder(tmp_path: Path) -> None:
    recipe = small_recipe("topics")
    outcomes = pipeline.run([recipe], tmp_path / "run", ScriptedEngine())
    assert [(outcome.recipe.name, outcome.out_dir, outcome.error) for outcome in outcomes] == [
        ("topics", tmp_path / "run", None)]
    dataset = load_synthetic_dataset(tmp_path / "run" / "dataset")
    assert sum(len(split) for split in dataset.values()) == 3 * len(recipe.labels) * len(recipe.languages)
    # Run again: everything is cached, the same dataset.
    again = pipeline.run([recipe], tmp_path / "run", ScriptedEngine())
    assert again[0].error is None
    assert load_synthetic_dataset(tmp_path / "run" / "dataset")["train"]["text"] == dataset["train"]["text"]


def test_a_failing_recipe_among_several_leaves_the_others_finished(tmp_path: Path) -> None:
    recipes = [small_recipe("first"), small_recipe("broken"), small_recipe("third")]
    events = Recorded()
    with pytest.raises(HfsynthError, match=r"^1 of 3 recipes failed \(broken\); the others finished"):
        pipeline.run(recipes, tmp_path / "grid", ScriptedEngine(), events)
    assert events.finished_with["first"] is None and events.finished_with["third"] is None
    assert "cannot load teacher model" in str(events.finished_with["broken"])
    for name in ("first", "third"):
        assert (tmp_path / "grid" / name / "dataset" / "dataset_dict.json").is_file()
    assert not (tmp_path / "grid" / "broken" / "dataset").exists()


def test_one_failing_recipe_alone_raises_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="cannot load teacher model"):
        pipeline.run([small_recipe("broken")], tmp_path / "run", ScriptedEngine())
