"""The card classes on typed data: metadata, rendered text, the per-kind facts from the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard

from hfsynth.cards.data import SyntheticDatasetCardData, size_category
from hfsynth.cards.render import StudentModelCard, SyntheticDatasetCard, dataset_card, student_card
from hfsynth.recipe.student_kinds import STUDENT_KINDS
from hfsynth.templates import template_path
from tests.run_helpers import STUDENT, TEACHER_ID, evaluation_results, fake_run, generation_stats, recipe_with_a_student


def test_card_classes_are_huggingface_hub_cards_with_packaged_templates() -> None:
    assert issubclass(SyntheticDatasetCard, DatasetCard) and issubclass(StudentModelCard, ModelCard)
    for card_class in (SyntheticDatasetCard, StudentModelCard):
        assert Path(card_class.default_template_path).is_file()
    for kind in STUDENT_KINDS.values():
        assert template_path(kind.card_template).is_file()
    with pytest.raises(ValueError, match="template files"):
        SyntheticDatasetCard.from_template(None, template_str="{{ card_data }}")  # type: ignore[arg-type]


def test_dataset_card_from_typed_data(tmp_path: Path) -> None:
    recipe = recipe_with_a_student(tmp_path)
    data = SyntheticDatasetCardData(recipe, generation_stats(), "me/topics", evaluation_results(recipe).headline)
    card = SyntheticDatasetCard.from_data(data)
    assert card.data.size_categories == ["n<1K"] and card.data.multilinguality == "multilingual"
    assert card.data.pretty_name == "topics (synthetic)" and "synthetic" in card.data.tags
    assert 'load_dataset("me/topics")' in card.text and "`dropped.jsonl`" in card.text
    assert "| too short | 2 |" in card.text and f"| {STUDENT} | student | en | 0.750 |" in card.text
    assert size_category(10_000) == "10K<n<100K"


def test_dataset_card_names_the_qualified_repo_id(tmp_path: Path) -> None:
    recipe, run = fake_run(tmp_path)
    recipe = recipe.model_copy(update={"publish": recipe.publish.model_copy(update={"organization": "acme"}),
                                       "dataset": recipe.dataset.model_copy(update={"repo_id": "topics-synthetic"})})
    assert 'load_dataset("acme/topics-synthetic")' in dataset_card(recipe, run.dataset.root).text


def test_student_card_from_a_run(tmp_path: Path) -> None:
    recipe, run = fake_run(tmp_path)
    run.student(STUDENT).comparison_plot.write_bytes(b"png")
    card = student_card(recipe, run.student(STUDENT).root, evaluation_results(recipe), "me/topics-setfit", "me/topics")
    data = card.data
    assert (data.library_name, data.pipeline_tag) == ("setfit", "text-classification")
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.datasets[0] == "me/topics"
    scores = {(result.dataset_name, result.metric_type): result.metric_value for result in data.eval_results}
    assert scores[(f"{recipe.evaluation.sets[0].card_dataset_id} (en)", "f1")] == 0.75
    text = card.text
    assert "A **SetFit** student" in text and 'SetFitModel.from_pretrained("me/topics-setfit")' in text
    teacher_line = text.index(f"| {TEACHER_ID} | teacher |")
    assert teacher_line < text.index(f"| **{STUDENT}** (this model) | student | 0.750 (0.760) | 0.650 (0.660) |")
    assert "![Teacher vs students, macro-F1 per language](teacher_vs_students.png)" in text
    assert "`hfsynth_recipe.yaml` in this repository" in text


def test_student_card_before_evaluation(tmp_path: Path) -> None:
    recipe, run = fake_run(tmp_path, evaluated=False)
    card = student_card(recipe, run.student(STUDENT).root, None, "me/topics-setfit", None)
    assert card.data.eval_results is None and "Not evaluated yet" in card.text
    with pytest.raises(FileNotFoundError):
        student_card(recipe, tmp_path, None, "me/x", None)
