"""Cards: typed metadata (huggingface_hub's card data classes) kept apart from rendering (Jinja templates in cards/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from hfsynth.languages import language_name
from hfsynth.recipe import Recipe
from hfsynth.run_folder import DatasetFolder, StudentFolder
from hfsynth.run_records import EvaluationResults, GenerationStats, SummaryEntry
from hfsynth.templates import render

PAPER_URL = "https://arxiv.org/abs/2601.16278"
TAGS = ["hfsynth", "synthetic-data", "distillation"]


def size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if count < limit:
            return name
    return "n>1M"


def dataset_card_data(recipe: Recipe, total: int) -> DatasetCardData:
    return DatasetCardData(
        language=list(recipe.languages),
        license=recipe.dataset.license,
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        multilinguality="multilingual" if len(recipe.languages) > 1 else "monolingual",
        size_categories=[size_category(total)],
        source_datasets=["original"],
        task_categories=["text-classification"],
        pretty_name=f"{recipe.name} (synthetic)",
        tags=[*TAGS, "synthetic", recipe.task.name],
    )


def dataset_card(recipe: Recipe, dataset_dir: Path, results: list[SummaryEntry] | None = None) -> DatasetCard:
    """The dataset card for a folder written by ``hfsynth.dataset.save_dataset`` (and, later, its students' results)."""
    stats = GenerationStats.load(DatasetFolder(dataset_dir).stats)
    sizes = ", ".join(f"{split}: {count}" for split, count in stats.splits.items())
    card_data = dataset_card_data(recipe, stats.kept_samples)
    content = render(
        "dataset_card.md",
        card_data=card_data.to_yaml(),
        pretty_name=card_data.pretty_name,
        recipe=recipe,
        stats=stats,
        split_sizes=sizes,
        repo_id=recipe.dataset.repo_id,
        language_names=[f"{language_name(code)} (`{code}`)" for code in recipe.languages],
        results=results or [],
    )
    return DatasetCard(content)


def write_dataset_card(recipe: Recipe, dataset_dir: Path, results: list[SummaryEntry] | None = None) -> DatasetCard:
    card = dataset_card(recipe, dataset_dir, results)
    card.save(DatasetFolder(dataset_dir).card)
    return card


# --- student model cards --------------------------------------------------------------------------------------------

STUDENT_TEMPLATES = {"setfit": "student_setfit.md", "encoder": "student_encoder.md", "sft": "student_sft.md",
                     "in-context": "student_in_context.md"}
LIBRARY_NAMES = {"setfit": "setfit", "encoder": "transformers", "sft": "transformers", "in-context": "transformers"}
# SFT and in-context students are generative LLMs that hfsynth uses as classifiers by scoring the labels.
PIPELINE_TAGS = {"setfit": "text-classification", "encoder": "text-classification", "sft": "text-generation",
                 "in-context": "text-generation"}
KIND_TITLES = {"setfit": "SetFit", "encoder": "fine-tuned encoder", "sft": "LoRA instruction-tuned (TRL SFT)",
               "in-context": "in-context learning"}


def hub_url(repo_id: str, repo_type: str = "") -> str:
    return f"https://huggingface.co/{repo_type + '/' if repo_type else ''}{repo_id}"


def student_eval_results(recipe: Recipe, headline: list[SummaryEntry], student_name: str) -> list[EvalResult]:
    """model-index entries for one student: macro-F1 and accuracy per language, straight from results.json."""
    sets = {seed_set.language: seed_set for seed_set in reversed(recipe.evaluation.sets)}
    eval_results = []
    for entry in headline:
        if entry.role != "student" or entry.model != student_name or entry.language not in sets:
            continue
        test = sets[entry.language]
        common = dict(task_type="text-classification", task_name=f"{recipe.task.name} classification",
                      dataset_type=test.card_dataset_id, dataset_name=f"{test.card_dataset_id} ({entry.language})",
                      dataset_config=test.card_dataset_config, dataset_split=test.split)
        eval_results.append(EvalResult(**common, metric_type="f1", metric_name="Macro-F1", metric_config="macro",
                                       metric_value=entry.macro_f1))
        eval_results.append(EvalResult(**common, metric_type="accuracy", metric_name="Accuracy",
                                       metric_value=entry.accuracy))
    return eval_results


def _comparison(headline: list[SummaryEntry]) -> list[dict[str, Any]]:
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in headline:
        model = models.setdefault((entry.role, entry.model), {"name": entry.model, "role": entry.role, "cells": {}})
        model["cells"][entry.language] = {"macro_f1": entry.macro_f1, "accuracy": entry.accuracy}
    return sorted(models.values(), key=lambda model: model["role"] != "teacher")


def student_card(
    recipe: Recipe,
    student_dir: Path,
    results: EvaluationResults | None,
    repo_id: str,
    dataset_repo_id: str | None,
    example_text: str = "Your text here.",
) -> ModelCard:
    from hfsynth.embedded import EMBEDDED_MODELS
    from hfsynth.students.base import read_meta

    meta = read_meta(student_dir)
    if meta is None:
        raise FileNotFoundError(f"{student_dir}: not a finished student")
    folder = StudentFolder(student_dir)
    kind, name = meta.kind, folder.name
    headline = results.headline if results else []
    embedded = EMBEDDED_MODELS.get(meta.model)
    eval_ids = list(dict.fromkeys(seed_set.card_dataset_id for seed_set in recipe.evaluation.sets))
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        base_model=meta.base_model,
        datasets=[*([dataset_repo_id] if dataset_repo_id else []), *eval_ids],
        language=list(recipe.languages),
        license=embedded.license if embedded else recipe.dataset.license,
        library_name=LIBRARY_NAMES[kind],
        pipeline_tag=PIPELINE_TAGS[kind],
        tags=[*TAGS, kind, recipe.task.name, *(["peft", "lora"] if kind == "sft" else [])],
        eval_results=student_eval_results(recipe, headline, name) or None,
    )
    test_sets = []
    n_by_language = {entry.language: entry.n for entry in headline}
    for seed_set in recipe.evaluation.sets:
        if seed_set.language in n_by_language and seed_set.language not in {t["language"] for t in test_sets}:
            test_sets.append({"language": seed_set.language, "dataset": seed_set.card_dataset_id,
                              "config": seed_set.card_dataset_config, "n": n_by_language[seed_set.language]})
    content = render(
        STUDENT_TEMPLATES[kind],
        card_data=card_data.to_yaml(),
        model_name=card_data.model_name,
        kind_title=KIND_TITLES[kind],
        recipe=recipe,
        teacher=results.teacher.model if results else recipe.teacher.model,
        teacher_mode=results.teacher.mode if results else "zero-shot",
        base_model=meta.base_model,
        dataset_repo_id=dataset_repo_id,
        training=meta.training,
        params=meta.params,
        language_names=[f"{language_name(code)} (`{code}`)" for code in recipe.languages],
        languages=results.languages if results else list(recipe.languages),
        comparison=_comparison(headline),
        model_key=name,
        test_sets=test_sets,
        # Relative to the card: the plot's copy in the student's folder.
        plot=folder.comparison_plot.name if folder.comparison_plot.is_file() else None,
        repo_id=repo_id,
        example_text=example_text.replace('"', "'"),
        hub_url=hub_url,
    )
    return ModelCard(content)
