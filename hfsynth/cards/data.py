"""What hfsynth's cards say, typed and computed apart from rendering (:mod:`hfsynth.cards.render`), as huggingface_hub
keeps ``repocard_data.py`` apart from ``repocard.py`` and setfit keeps ``SetFitModelCardData`` apart from its template.

Each class holds the facts one card is made of and gives the card's Hub metadata (huggingface_hub's typed
``DatasetCardData``/``ModelCardData``/``SpaceCardData``) and the values its template renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import DatasetCardData, EvalResult, ModelCardData, SpaceCardData

from hfsynth.evaluation.results import EvaluationResults, SummaryEntry, SyntheticVsHuman
from hfsynth.formatting import interval_text
from hfsynth.languages import language_name
from hfsynth.recipe.schema import Recipe
from hfsynth.runs.folder import DatasetFolder, SpaceFolder, StudentFolder
from hfsynth.runs.records import FeedbackReport, GenerationStats, QualityReport, StudentMeta

if TYPE_CHECKING:
    from hfsynth.recipe.student_kinds import StudentKind
    from hfsynth.space.manifest import SpaceManifest

TAGS = ["hfsynth", "synthetic-data", "distillation"]
#: Hub Spaces reject longer short descriptions.
SHORT_DESCRIPTION_LIMIT = 60
# Only the names of a folder's files are shown in cards, never a path on this machine.
_DATASET_FILES = DatasetFolder(Path())
_STUDENT_FILES = StudentFolder(Path())
_SPACE_FILES = SpaceFolder(Path())


def size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if count < limit:
            return name
    return "n>1M"


def language_names(codes: list[str]) -> list[str]:
    return [f"{language_name(code)} (`{code}`)" for code in codes]


def hub_url(repo_id: str, repo_type: str = "") -> str:
    return f"https://huggingface.co/{repo_type + '/' if repo_type else ''}{repo_id}"


@dataclass(frozen=True)
class SyntheticDatasetCardData:
    """The dataset card: the recipe, what generation did, and (once evaluated) the students trained on it."""

    recipe: Recipe
    stats: GenerationStats
    repo_id: str
    #: The headline of results.json (teacher and students trained on all the data); empty before evaluation.
    results: list[SummaryEntry] = field(default_factory=list)
    #: The quality report and its plot beside the card (``None`` before the pipeline computed them).
    quality: QualityReport | None = None
    quality_plot: str | None = None
    #: Error-driven generation's rounds (``feedback.json``), when the recipe turned it on.
    feedback: FeedbackReport | None = None
    #: Each reference student against human data of its size, per language, and the pool it came from (results.json).
    human: list[SyntheticVsHuman] = field(default_factory=list)
    human_pool: str | None = None

    @property
    def pretty_name(self) -> str:
        return f"{self.recipe.name} (synthetic)"

    def metadata(self) -> DatasetCardData:
        recipe = self.recipe
        return DatasetCardData(
            language=list(recipe.languages),
            license=recipe.dataset.license,
            annotations_creators=["machine-generated"],
            language_creators=["machine-generated"],
            multilinguality="multilingual" if len(recipe.languages) > 1 else "monolingual",
            size_categories=[size_category(self.stats.kept_samples)],
            source_datasets=["original"],
            task_categories=["text-classification"],
            pretty_name=self.pretty_name,
            tags=[*TAGS, "synthetic", recipe.task.name],
        )

    def template_values(self) -> dict[str, Any]:
        return {
            "pretty_name": self.pretty_name,
            "recipe": self.recipe,
            "stats": self.stats,
            "split_sizes": ", ".join(f"{split}: {count}" for split, count in self.stats.splits.items()),
            "repo_id": self.repo_id,
            "language_names": language_names(self.recipe.languages),
            "results": self.results,
            "human": {f"{row.student}/{row.language}": row for row in self.human},
            "human_pool": self.human_pool,
            "dropped_file": _DATASET_FILES.dropped.name,
            "recipe_file": _DATASET_FILES.recipe.name,
            "quality": self.quality,
            "quality_lines": self.quality.table_lines() if self.quality else [],
            "quality_file": _DATASET_FILES.quality.name,
            "quality_plot": self.quality_plot,
            "feedback": self.feedback,
            "feedback_file": _DATASET_FILES.feedback.name,
        }


@dataclass(frozen=True)
class StudentCardData:
    """A student's model card: what it is, how it was trained, and how it compares with the teacher on real data."""

    recipe: Recipe
    kind: StudentKind
    meta: StudentMeta
    #: The recipe student's name: its key in results.json.
    name: str
    repo_id: str
    dataset_repo_id: str | None
    results: EvaluationResults | None
    #: The base model's license (embedded models know theirs), else the dataset's.
    license: str
    example_text: str = "Your text here."
    #: The comparison plot beside the card, if it is there.
    plot: str | None = None

    @property
    def headline(self) -> list[SummaryEntry]:
        return self.results.headline if self.results else []

    def eval_results(self) -> list[EvalResult]:
        """model-index entries: macro-F1 and accuracy per language, straight from results.json."""
        recipe = self.recipe
        sets = {seed_set.language: seed_set for seed_set in reversed(recipe.evaluation.sets)}
        eval_results = []
        for entry in self.headline:
            if entry.role != "student" or entry.model != self.name or entry.language not in sets:
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

    def metadata(self) -> ModelCardData:
        eval_ids = list(dict.fromkeys(seed_set.card_dataset_id for seed_set in self.recipe.evaluation.sets))
        return ModelCardData(
            model_name=self.repo_id.split("/")[-1],
            base_model=self.meta.base_model,
            datasets=[*([self.dataset_repo_id] if self.dataset_repo_id else []), *eval_ids],
            language=list(self.recipe.languages),
            license=self.license,
            library_name=self.kind.library_name,
            pipeline_tag=self.kind.pipeline_tag,
            tags=[*TAGS, self.kind.name, self.recipe.task.name, *self.kind.card_tags],
            eval_results=self.eval_results() or None,
        )

    def comparison(self) -> list[dict[str, Any]]:
        """One line per headline model (the teacher first): macro-F1 and accuracy per language."""
        models: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in self.headline:
            model = models.setdefault((entry.role, entry.model), {"name": entry.model, "role": entry.role, "cells": {}})
            model["cells"][entry.language] = {"macro_f1": entry.macro_f1, "accuracy": entry.accuracy}
        return sorted(models.values(), key=lambda model: model["role"] != "teacher")

    def verdicts(self) -> list[dict[str, Any]]:
        """Per language: this student against the teacher and (with a reference) against human data, as the paired
        bootstrap of results.json has it."""
        teachers = self.results.teacher_by_language() if self.results else {}
        verdicts = []
        for entry in self.headline:
            if entry.role != "student" or entry.model != self.name or entry.vs_teacher is None:
                continue
            teacher = teachers.get(entry.language)
            human = self.results.human_comparison(self.name, entry.language) if self.results else None
            verdicts.append({
                "language": entry.language,
                "score": entry.score_text("macro_f1"),
                "teacher": teacher.score_text("macro_f1") if teacher else "n/a",
                "vs_teacher": entry.vs_teacher,
                # Human data against this student on synthetic data of the same size (a subsample where the
                # human pool was the smaller).
                "vs_human": human.comparison if human else None,
                "synthetic_same_size": f"{human.synthetic_macro_f1:.3f} {interval_text(human.synthetic_macro_f1_ci)}"
                if human else None,
                "human": f"{human.human_macro_f1:.3f} {interval_text(human.human_macro_f1_ci)}" if human else None,
                "sizes": human.sizes_text() if human else None,
                "pool": self.results.pool_text(entry.language) if human and self.results else None,
            })
        return verdicts

    def test_sets(self) -> list[dict[str, Any]]:
        n_by_language = {entry.language: entry.n for entry in self.headline}
        test_sets: list[dict[str, Any]] = []
        for seed_set in self.recipe.evaluation.sets:
            if seed_set.language in n_by_language and seed_set.language not in {t["language"] for t in test_sets}:
                test_sets.append({"language": seed_set.language, "dataset": seed_set.card_dataset_id,
                                  "config": seed_set.card_dataset_config, "n": n_by_language[seed_set.language]})
        return test_sets

    def template_values(self) -> dict[str, Any]:
        results = self.results
        return {
            "model_name": self.repo_id.split("/")[-1],
            "kind_title": self.kind.title,
            "recipe": self.recipe,
            "teacher": results.teacher.model if results else self.recipe.teacher.model,
            "teacher_mode": results.teacher.mode if results else "zero-shot",
            "base_model": self.meta.base_model,
            "dataset_repo_id": self.dataset_repo_id,
            "training": self.meta.training,
            "params": self.meta.params,
            "language_names": language_names(self.recipe.languages),
            "languages": results.languages if results else list(self.recipe.languages),
            "comparison": self.comparison(),
            "verdicts": self.verdicts(),
            "across_languages": results.across_languages(self.name) if results and len(results.languages) > 1
            else "",
            "confidence": results.bootstrap.confidence if results and results.bootstrap else None,
            "model_key": self.name,
            "test_sets": self.test_sets(),
            "plot": self.plot,
            "repo_id": self.repo_id,
            "example_text": self.example_text.replace('"', "'"),
            "hub_url": hub_url,
            "recipe_file": _STUDENT_FILES.recipe.name,
        }


@dataclass(frozen=True)
class ComparisonSpaceCardData:
    """The Space's card: Hub front matter (sdk, app file, models, datasets) and what the Space shows."""

    recipe: Recipe
    manifest: SpaceManifest
    #: The Gradio version the Space runs (the Hub installs it from the front matter).
    sdk_version: str

    def metadata(self) -> SpaceCardData:
        short_description = f"Teacher LLM vs distilled students: {self.recipe.task.name}"[:SHORT_DESCRIPTION_LIMIT]
        return SpaceCardData(
            title=self.manifest.title,
            sdk="gradio",
            sdk_version=self.sdk_version,
            app_file=SpaceFolder.APP_FILE,
            license="apache-2.0",
            models=self.manifest.models or None,
            datasets=self.manifest.datasets or None,
            tags=[*TAGS, self.recipe.task.name],
            # Hub Space settings without a named parameter in SpaceCardData.
            emoji="🧑‍🏫",
            colorFrom="indigo",
            colorTo="green",
            pinned=False,
            short_description=short_description,
        )

    def template_values(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "recipe": self.recipe,
            "teacher": self.manifest.recipe["teacher"]["model"],
            "language_names": language_names(self.recipe.languages),
            "manifest_file": _SPACE_FILES.manifest.name,
            "recipe_file": _SPACE_FILES.recipe.name,
        }
