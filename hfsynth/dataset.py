"""The synthetic dataset: built from curated samples, saved to disk with its card, loaded back from disk or the Hub.

The folder's layout (``hfsynth.runs.folder.DatasetFolder``): the ``DatasetDict`` (``save_to_disk``), the dataset card,
the recipe that made it, every sample curation dropped (and why) and the generation statistics the card is built from;
the pipeline adds the quality report (:mod:`hfsynth.quality`).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import datasets

from hfsynth.errors import HfsynthError
from hfsynth.generation.samples import GenerationResult, features, per_cell_counts
from hfsynth.recipe.schema import Recipe
from hfsynth.runs.folder import TEACHER_SHOWN_FILE, DatasetFolder
from hfsynth.runs.records import GenerationStats, TeacherShown

SPLITS = ("train", "validation")


def build_dataset_dict(recipe: Recipe, result: GenerationResult) -> datasets.DatasetDict:
    """Train/validation split stratified by (language, label), reproducible from the recipe's seed."""
    by_cell: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, sample in enumerate(result.samples):
        by_cell[(sample.language, sample.label)].append(index)
    rng = random.Random(recipe.generation.seed)
    validation: set[int] = set()
    for indices in by_cell.values():
        # Never move a cell's last examples out of train: a student must see every label.
        count = min(int(len(indices) * recipe.generation.validation_fraction), max(len(indices) - 1, 0))
        validation.update(rng.sample(indices, count))
    if not validation:
        # datasets cannot save an empty split; a tiny dataset lends one row of its largest cell instead.
        largest = max(by_cell.values(), key=len, default=[])
        if len(largest) > 1:
            validation.add(rng.choice(largest))

    rows: dict[str, dict[str, list[Any]]] = {split: defaultdict(list) for split in SPLITS}
    for index, sample in enumerate(result.samples):
        split = rows["validation" if index in validation else "train"]
        split["text"].append(sample.text)
        split["label"].append(sample.label)
        split["language"].append(sample.language)
        split["teacher"].append(result.teacher_model)
        split["strategy"].append(result.strategy)
        split["prompt_id"].append(sample.prompt_id)
    schema = features(recipe.label_names)
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_dict({name: rows[split][name] for name in schema}, features=schema)
         for split in SPLITS if rows[split]["text"]}
    )


def generation_stats(recipe: Recipe, result: GenerationResult, dataset: datasets.DatasetDict) -> GenerationStats:
    return GenerationStats(
        teacher=result.teacher_model,
        strategy=result.strategy,
        calls=result.calls,
        cached_calls=result.cached_calls,
        rounds=result.rounds,
        asked_samples=result.asked,
        parsed_samples=result.parsed,
        kept_samples=len(result.samples),
        dropped_samples=len(result.dropped),
        drop_reasons=result.drop_counts(),
        per_language_label=per_cell_counts(result.samples),
        target_per_label=recipe.generation.samples_per_label,
        splits={split: len(rows) for split, rows in dataset.items()},
        teacher_tokens=result.teacher_tokens,
    )


def check_every_cell(recipe: Recipe, result: GenerationResult) -> None:
    """A dataset with no samples at all, or none for some label in some language, trains students that cannot
    predict that label: stop with what curation dropped there instead."""
    counts = result.counts()
    empty = [(language, label) for language in recipe.languages for label in recipe.label_names
             if counts[(language, label)] == 0]
    if not empty:
        return
    drops: dict[str, int] = defaultdict(int)
    for record in result.dropped:
        if (record.language, record.label) in empty:
            drops[record.reason] += 1
    dropped = ", ".join(f"{reason} {count}" for reason, count in sorted(drops.items())) or "nothing"
    where = ("no samples at all" if len(result.samples) == 0 else
             "no samples for " + ", ".join(f"{label!r} in {language}" for language, label in empty[:5])
             + (f" and {len(empty) - 5} more" if len(empty) > 5 else ""))
    raise HfsynthError(
        f"generation kept {where} (dropped there: {dropped}): loosen curation (min_words, max_words, language_id) "
        "or generation (samples_per_label, context) in the recipe; a re-run reuses the cached teacher answers"
    )


def save_dataset(recipe: Recipe, result: GenerationResult, out_dir: Path) -> datasets.DatasetDict:
    """Write the dataset, the recipe, the drop record and the statistics into ``out_dir`` (the card is written by
    :func:`hfsynth.cards.render.write_dataset_card` once the quality report is there too).

    Fails (:func:`check_every_cell`) when a label is left without samples in a language.
    """
    check_every_cell(recipe, result)
    folder = DatasetFolder(out_dir)
    dataset = build_dataset_dict(recipe, result)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset.save_to_disk(str(out_dir))
    folder.recipe.write_text(recipe.source_text, encoding="utf-8")
    with folder.dropped.open("w", encoding="utf-8") as handle:
        for record in result.dropped:
            handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
    generation_stats(recipe, result, dataset).save(folder.stats)
    TeacherShown(seed_texts=result.teacher_shown).save(folder.teacher_shown)
    if result.feedback is not None:
        result.feedback.save(folder.feedback)
    else:
        folder.feedback.unlink(missing_ok=True)  # from an earlier run of a recipe that had feedback on
    return dataset


def load_synthetic_dataset(source: str | Path) -> datasets.DatasetDict:
    """A synthetic dataset from a folder written by :func:`save_dataset` or from a Hub dataset id."""
    path = Path(source)
    try:
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(str(source))
    except Exception as exc:  # many exception types; the user needs the source and the reason in one line
        raise HfsynthError(f"cannot load synthetic dataset {source}: {type(exc).__name__}: {exc}") from None
    if not isinstance(loaded, datasets.DatasetDict) or "train" not in loaded:
        raise HfsynthError(f"{source}: not a synthetic dataset (expected splits {SPLITS})")
    missing = {"text", "label", "language"} - set(loaded["train"].column_names)
    if missing:
        raise HfsynthError(f"{source}: missing columns {sorted(missing)}")
    return loaded


def load_teacher_shown(source: str | Path) -> list[str] | None:
    """The real texts a synthetic dataset's teacher may have been shown (a folder's ``teacher_shown.json``, or the
    same file of a Hub dataset); None when the dataset does not record them."""
    path = Path(source)
    if path.is_dir():
        shown = TeacherShown.load_if_present(DatasetFolder(path).teacher_shown)
        return shown.seed_texts if shown is not None else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    try:
        local = hf_hub_download(str(source), TEACHER_SHOWN_FILE, repo_type="dataset")
    except EntryNotFoundError:
        return None
    except (HfHubHTTPError, OSError) as error:
        raise HfsynthError(f"cannot read {TEACHER_SHOWN_FILE} of dataset {source}: {type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''}") from None
    return TeacherShown.load(Path(local)).seed_texts
