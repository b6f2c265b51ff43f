"""Cards: typed metadata (huggingface_hub's card data classes) kept apart from rendering (Jinja templates in cards/)."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import DatasetCard, DatasetCardData

from hfsynth.languages import language_name
from hfsynth.recipe import Recipe

PAPER_URL = "https://arxiv.org/abs/2601.16278"
TAGS = ["hfsynth", "synthetic-data", "distillation"]

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(importlib.resources.files("hfsynth.card_templates"))),
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
)


def render(template: str, **values: Any) -> str:
    return _templates.get_template(template).render(**values)


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


def dataset_card(recipe: Recipe, dataset_dir: Path, results: list[dict[str, Any]] | None = None) -> DatasetCard:
    """The dataset card for a folder written by ``hfsynth.dataset.save_dataset`` (and, later, its students' results)."""
    from hfsynth.dataset import STATS_FILE

    stats = json.loads((dataset_dir / STATS_FILE).read_text(encoding="utf-8"))
    sizes = ", ".join(f"{split}: {count}" for split, count in stats["splits"].items())
    card_data = dataset_card_data(recipe, stats["kept_samples"])
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


def write_dataset_card(recipe: Recipe, dataset_dir: Path, results: list[dict[str, Any]] | None = None) -> DatasetCard:
    card = dataset_card(recipe, dataset_dir, results)
    card.save(dataset_dir / "README.md")
    return card
