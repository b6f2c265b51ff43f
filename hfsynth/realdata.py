"""Real, human-labelled data: few-shot seeds for generation, the test sets students and teacher are judged on, and
the human-data reference: real training examples, sized like the synthetic data, that students are also trained on."""

from __future__ import annotations

import contextlib
import logging
import random
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from hfsynth.errors import HfsynthError
from hfsynth.recipe.schema import Recipe, SeedSet

_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}


def load_labelled_set(seed_set: SeedSet, label_names: list[str]) -> datasets.Dataset:
    """Rows ``{"text", "label", "language"}`` with ``label`` a string from ``label_names``.

    Labels outside the recipe's set (after ``label_map``) are an error: evaluating on labels a model cannot predict
    would make every number meaningless. Labels mapped to null are left out, rows and all. A file or split with no
    rows left is an error too.
    """
    where = seed_set.path or seed_set.hub_id
    try:
        if seed_set.path is not None:
            suffix = Path(seed_set.path).suffix.lower()
            if suffix not in _LOCAL_FORMATS:
                raise HfsynthError(f"{seed_set.path}: unsupported file type {suffix!r} (use .jsonl, .csv or .parquet)")
            if Path(seed_set.path).is_file() and not _has_content(Path(seed_set.path)):
                raise HfsynthError(f"{seed_set.path}: the file is empty: it needs labelled rows")
            extra = {"delimiter": "\t"} if suffix == ".tsv" else {}
            # Read afresh every time, in memory: datasets' cache knows a local file by its path and would go on
            # giving the rows of a file since rewritten in place.
            with _reader_errors_unlogged(), tempfile.TemporaryDirectory(prefix="hfsynth-data-") as cache_dir:
                raw = datasets.load_dataset(_LOCAL_FORMATS[suffix], data_files=seed_set.path, split="train",
                                            cache_dir=cache_dir, keep_in_memory=True, **extra)
        else:
            raw = datasets.load_dataset(seed_set.hub_id, seed_set.config, split=seed_set.split)
    except HfsynthError:
        raise
    except ValueError as exc:
        if "corresponds to no data" not in str(exc):
            raise HfsynthError(f"cannot load labelled data from {where}: ValueError: {exc}") from None
        raise HfsynthError(f"{where}: no rows (only a header?): it needs labelled rows") from None
    except Exception as exc:  # datasets raises many types; the user needs the source and the reason
        # datasets wraps the reader's own error (a truncated JSON line, a column of mixed types): that one says why.
        reason = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        first_line = str(reason).strip().splitlines()[0] if str(reason).strip() else ""
        raise HfsynthError(f"cannot load labelled data from {where}: {type(reason).__name__}: {first_line}") from None

    for column in (seed_set.text_column, seed_set.label_column):
        if column not in raw.column_names:
            raise HfsynthError(f"{where}: no column {column!r} (columns: {raw.column_names})")
    try:
        return _labelled_rows(raw, seed_set, label_names)
    except UnicodeDecodeError as error:  # arrow keeps the bytes as read; they fail when turned into text
        raise HfsynthError(f"{where}: not UTF-8 text ({error.reason} at byte {error.start} of a value): save the "
                           "file as UTF-8") from None


def _labelled_rows(raw: datasets.Dataset, seed_set: SeedSet, label_names: list[str]) -> datasets.Dataset:
    where = seed_set.path or seed_set.hub_id
    label_feature = raw.features[seed_set.label_column]
    to_name = label_feature.int2str if isinstance(label_feature, datasets.ClassLabel) else str
    known = set(label_names)
    texts, labels = [], []
    unknown: set[str] = set()
    for row, (text, label) in enumerate(zip(raw[seed_set.text_column], raw[seed_set.label_column], strict=True), 1):
        if label is None:
            raise HfsynthError(f"{where}: row {row}: column {seed_set.label_column!r} is empty")
        original = to_name(label)
        name = seed_set.label_map.get(original, original)
        if name is None:  # mapped to null: the recipe leaves this label (and its rows) out
            continue
        # Checked here, not where the texts are used: by then the teacher calls may have been paid for.
        if not isinstance(text, str) or not text.strip():
            raise HfsynthError(f"{where}: row {row}: column {seed_set.text_column!r} must be a non-empty text, got "
                               f"{text!r}")
        if name not in known:
            unknown.add(name)
            continue
        texts.append(text)
        labels.append(name)
    if unknown:
        raise HfsynthError(f"{where}: labels {sorted(unknown)} are not in the recipe's labels; map them with label_map "
                           "(to a recipe label, or to null to leave them out)")
    if not texts:
        kept = " after label_map" if raw.num_rows else ""
        raise HfsynthError(f"{where}: no labelled rows{kept}: it needs rows with the recipe's labels")
    return datasets.Dataset.from_dict(
        {"text": texts, "label": labels, "language": [seed_set.language] * len(texts)}
    )


@contextlib.contextmanager
def _reader_errors_unlogged() -> Iterator[None]:
    """datasets logs a file reader's error (a cut-short JSON line) and then raises it: the error line hfsynth prints
    says the same, so the log record would only be a second copy of it."""
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _has_content(path: Path) -> bool:
    with path.open("rb") as handle:
        return any(chunk.strip() for chunk in iter(lambda: handle.read(65536), b""))


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


# --- test sets, and the real texts the teacher is shown -----------------------------------------------------------


@dataclass(frozen=True)
class TestSet:
    """The real texts of one language that teacher and students are judged on."""

    __test__ = False  # not a pytest class

    language: str
    texts: list[str]
    labels: list[str]


def load_test_sets(recipe: Recipe) -> list[TestSet]:
    """One test set per language (sets of the same language are joined), each stratified to ``max_samples``."""
    by_language: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for seed_set in recipe.evaluation.sets:
        rows = load_labelled_set(seed_set, recipe.label_names)
        rows = stratified_sample(rows, recipe.evaluation.max_samples, recipe.evaluation.seed)
        texts, labels = by_language[seed_set.language]
        texts += rows["text"]
        labels += rows["label"]
    return [TestSet(language, texts, labels) for language, (texts, labels) in by_language.items()]


def teacher_demonstrations(recipe: Recipe, test_set: TestSet) -> list[tuple[str, str]]:
    """Real (text, label) examples shown to a few-shot teacher: from the recipe's seed sets, never from the test set."""
    count = recipe.evaluation.teacher_examples_per_label
    if count == 0:
        return []
    seed_sets = [seed_set for seed_set in recipe.generation.seeds if seed_set.language == test_set.language]
    if not seed_sets:
        raise HfsynthError(
            f"evaluation.teacher_examples_per_label is {count}, but generation.seeds has no real examples for "
            f"language {test_set.language!r} to show the teacher"
        )
    test_texts = set(test_set.texts)
    rng = random.Random(recipe.evaluation.seed)
    demonstrations = []
    for seed_set in seed_sets:
        for label, texts in examples_by_label(load_labelled_set(seed_set, recipe.label_names)).items():
            candidates = [text for text in texts if text not in test_texts]
            demonstrations += [(text, label) for text in rng.sample(candidates, min(count, len(candidates)))]
    rng.shuffle(demonstrations)
    return demonstrations


def texts_shown_to_the_teacher(recipe: Recipe, seed_texts: Iterable[str]) -> set[str]:
    """Every real text the teacher may have seen: the seed texts generation recorded (``seed_texts``, from the
    dataset's ``teacher_shown.json``) and the few-shot classification demonstrations of the evaluation."""
    shown = set(seed_texts)
    if recipe.evaluation.teacher_examples_per_label:
        for test_set in load_test_sets(recipe):
            shown.update(text for text, _ in teacher_demonstrations(recipe, test_set))
    return shown
