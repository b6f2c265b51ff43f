"""Real, human-labelled data: few-shot seeds for generation and the test sets students and teacher are judged on."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import datasets

from hfsynth.errors import HfsynthError
from hfsynth.recipe import Recipe, SeedSet

_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}


def load_labelled_set(seed_set: SeedSet, label_names: list[str]) -> datasets.Dataset:
    """Rows ``{"text", "label", "language"}`` with ``label`` a string from ``label_names``.

    Labels outside the recipe's set (after ``label_map``) are an error: evaluating on labels a model cannot predict
    would make every number meaningless.
    """
    where = seed_set.path or seed_set.hub_id
    try:
        if seed_set.path is not None:
            suffix = Path(seed_set.path).suffix.lower()
            if suffix not in _LOCAL_FORMATS:
                raise HfsynthError(f"{seed_set.path}: unsupported file type {suffix!r} (use .jsonl, .csv or .parquet)")
            extra = {"delimiter": "\t"} if suffix == ".tsv" else {}
            raw = datasets.load_dataset(_LOCAL_FORMATS[suffix], data_files=seed_set.path, split="train", **extra)
        else:
            raw = datasets.load_dataset(seed_set.hub_id, seed_set.config, split=seed_set.split)
    except HfsynthError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the source and the reason
        raise HfsynthError(f"cannot load labelled data from {where}: {type(exc).__name__}: {exc}") from None

    for column in (seed_set.text_column, seed_set.label_column):
        if column not in raw.column_names:
            raise HfsynthError(f"{where}: no column {column!r} (columns: {raw.column_names})")

    label_feature = raw.features[seed_set.label_column]
    to_name = label_feature.int2str if isinstance(label_feature, datasets.ClassLabel) else str
    known = set(label_names)
    texts, labels = [], []
    unknown: set[str] = set()
    for text, label in zip(raw[seed_set.text_column], raw[seed_set.label_column], strict=True):
        name = seed_set.label_map.get(to_name(label), to_name(label))
        if name not in known:
            unknown.add(name)
            continue
        texts.append(text)
        labels.append(name)
    if unknown:
        raise HfsynthError(f"{where}: labels {sorted(unknown)} are not in the recipe's labels; map them with label_map")
    return datasets.Dataset.from_dict(
        {"text": texts, "label": labels, "language": [seed_set.language] * len(texts)}
    )


def labelled_texts(recipe: Recipe, sets: Sequence[SeedSet]) -> list[str]:
    """Every text of ``sets`` (in order, duplicates kept)."""
    return [text for seed_set in sets for text in load_labelled_set(seed_set, recipe.label_names)["text"]]


def examples_by_label(dataset: datasets.Dataset) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(dataset["text"], dataset["label"], strict=True):
        grouped[label].append(text)
    return dict(grouped)


def stratified_sample(dataset: datasets.Dataset, max_rows: int | None, seed: int) -> datasets.Dataset:
    """At most ``max_rows`` rows keeping the label proportions: a fixed subset for quick but fair evaluations."""
    if max_rows is None or len(dataset) <= max_rows:
        return dataset
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(dataset["label"]):
        by_label[label].append(index)
    keep: list[int] = []
    for indices in by_label.values():
        share = max(1, round(max_rows * len(indices) / len(dataset)))
        keep.extend(rng.sample(indices, min(share, len(indices))))
    return dataset.select(sorted(keep)[:max_rows] if len(keep) > max_rows else sorted(keep))
