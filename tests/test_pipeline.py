"""hfsynth.pipeline without models: the stages' checks, cards written from a run's typed files, results read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard

from hfsynth import pipeline
from hfsynth.errors import HfsynthError
from tests.run_helpers import STUDENT, fake_run


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
