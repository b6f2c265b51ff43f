"""Cards as huggingface_hub card classes: the dataset card, each student's model card and the Space's card.

The facts each card shows are typed in :mod:`hfsynth.cards.data`; here they are rendered with the package's templates
(the top-level ``cards/`` folder, installed as ``hfsynth.card_templates``). Each class names its Hub card data class
and its default template, as huggingface_hub's ``ModelCard`` and ``DatasetCard`` do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import (
    CardData,
    DatasetCard,
    DatasetCardData,
    ModelCard,
    ModelCardData,
    RepoCard,
    SpaceCard,
    SpaceCardData,
)

from hfsynth.cards.data import ComparisonSpaceCardData, StudentCardData, SyntheticDatasetCardData
from hfsynth.embedded import EMBEDDED_MODELS
from hfsynth.evaluation.results import EvaluationResults
from hfsynth.recipe.schema import Recipe
from hfsynth.recipe.student_kinds import student_kind
from hfsynth.repo_ids import dataset_repo_id
from hfsynth.runs.folder import DatasetFolder, StudentFolder
from hfsynth.runs.records import FeedbackReport, GenerationStats, QualityReport
from hfsynth.students.base import read_meta
from hfsynth.templates import render_file, template_path

if TYPE_CHECKING:
    from hfsynth.space.manifest import SpaceManifest


class _PackagedTemplateCard(RepoCard):
    @classmethod
    def from_template(  # type: ignore[override]
        cls, card_data: CardData, template_path: str | Path | None = None, template_str: str | None = None,
        **template_kwargs: Any,
    ) -> Any:
        """As huggingface_hub's, but rendered in hfsynth's Jinja environment: the templates ``{% include %}`` and
        ``{% extends %}`` the templates beside them, which a bare ``jinja2.Template`` cannot resolve."""
        if template_str is not None:
            raise ValueError("hfsynth cards render template files, not strings")
        path = Path(template_path or cls.default_template_path)
        return cls(render_file(path, card_data=card_data.to_yaml(), **template_kwargs))


class SyntheticDatasetCard(_PackagedTemplateCard, DatasetCard):
    card_data_class = DatasetCardData
    default_template_path = template_path("dataset_card.md")

    @classmethod
    def from_data(cls, data: SyntheticDatasetCardData) -> SyntheticDatasetCard:
        return cls.from_template(data.metadata(), **data.template_values())


class StudentModelCard(_PackagedTemplateCard, ModelCard):
    card_data_class = ModelCardData
    #: Each kind's template extends this one (``StudentKind.card_template``).
    default_template_path = template_path("_student_base.md")

    @classmethod
    def from_data(cls, data: StudentCardData) -> StudentModelCard:
        return cls.from_template(data.metadata(), template_path(data.kind.card_template), **data.template_values())


class ComparisonSpaceCard(_PackagedTemplateCard, SpaceCard):
    card_data_class = SpaceCardData
    default_template_path = template_path("space_readme.md")

    @classmethod
    def from_data(cls, data: ComparisonSpaceCardData) -> ComparisonSpaceCard:
        return cls.from_template(data.metadata(), **data.template_values())


# --- from a run's files -----------------------------------------------------------------------------------------------


def dataset_card(recipe: Recipe, dataset_dir: Path, results: EvaluationResults | None = None
                 ) -> SyntheticDatasetCard:
    """The card of a dataset folder written by ``hfsynth.dataset.save_dataset`` (with, once evaluated, the headline
    results of the students trained on it)."""

    folder = DatasetFolder(dataset_dir)
    stats = GenerationStats.load(folder.stats)
    quality = QualityReport.load_if_present(folder.quality)
    return SyntheticDatasetCard.from_data(SyntheticDatasetCardData(
        recipe, stats, dataset_repo_id(recipe), results.headline if results else [], quality,
        # Relative to the card: the plot beside it.
        folder.quality_plot.name if quality is not None and folder.quality_plot.is_file() else None,
        FeedbackReport.load_if_present(folder.feedback),
        results.synthetic_vs_human if results else [],
        results.reference_pool.pool if results and results.reference_pool else None,
    ))


def write_dataset_card(
    recipe: Recipe, dataset_dir: Path, results: EvaluationResults | None = None
) -> SyntheticDatasetCard:
    card = dataset_card(recipe, dataset_dir, results)
    card.save(DatasetFolder(dataset_dir).card)
    return card


def student_card(
    recipe: Recipe,
    student_dir: Path,
    results: EvaluationResults | None,
    repo_id: str,
    dataset_repo_id: str | None,
    example_text: str = "Your text here.",
) -> StudentModelCard:
    """The model card of a finished student folder, with its scores from the run's results (if evaluated)."""

    meta = read_meta(student_dir)
    if meta is None:
        raise FileNotFoundError(f"{student_dir}: not a finished student")
    folder = StudentFolder(student_dir)
    embedded = EMBEDDED_MODELS.get(meta.model)
    return StudentModelCard.from_data(StudentCardData(
        recipe=recipe,
        kind=student_kind(meta.kind),
        meta=meta,
        name=folder.name,
        repo_id=repo_id,
        dataset_repo_id=dataset_repo_id,
        results=results,
        license=embedded.license if embedded else recipe.dataset.license,
        example_text=example_text,
        # Relative to the card: the plot's copy in the student's folder.
        plot=folder.comparison_plot.name if folder.comparison_plot.is_file() else None,
    ))


def space_card(recipe: Recipe, manifest: SpaceManifest) -> ComparisonSpaceCard:
    """The Space's card for a staged manifest."""
    from importlib.metadata import version

    # The installed version, without importing Gradio: it reads GRADIO_TEMP_DIR when imported, and `space serve`
    # sets that afterwards (hfsynth.space.session).
    return ComparisonSpaceCard.from_data(ComparisonSpaceCardData(recipe, manifest, version("gradio")))
