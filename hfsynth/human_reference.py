"""The human-data reference: students also trained on real, human-labelled data, the answer to the papers' question
of how far synthetic data gets (Pecher et al.: synthetic vs human data per language; Li et al.: the gap per task).

Its pool is the recipe's ``evaluation.reference.sets`` without any test text and, with the default ``pool:
strict``, without any text the teacher may have seen (its few-shot seeds and demonstrations): a student must not be
credited for texts the teacher copied from. ``pool: all`` is Pecher et al.'s protocol: the whole training split,
seeds included. The human training set takes as many texts per language and label as the synthetic data has, all
there are where the pool is smaller; then the verdict compares the human runs with the same student trained on a
synthetic subsample of exactly the human size (``synthetic-at-human-size`` runs), never with more synthetic data
than human. What happened to the pool, per language and label, is the :class:`HumanReference` record.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import datasets

from hfsynth.errors import HfsynthError
from hfsynth.generation.plan import load_seed_examples, seed_texts_the_plan_may_show
from hfsynth.generation.samples import features
from hfsynth.realdata import labelled_texts, load_labelled_set, texts_shown_to_the_teacher
from hfsynth.recipe.schema import Recipe
from hfsynth.runs.folder import TEACHER_SHOWN_FILE
from hfsynth.runs.records import HumanReference, ReferenceCell
from hfsynth.text_measures import normalize

Cell = tuple[str, str]  # (language, label)


def reference_pool(recipe: Recipe, seed_texts: Iterable[str] | None, pool: str = "strict"
                   ) -> tuple[dict[Cell, list[str]], dict[Cell, tuple[int, int]]]:
    """Real training texts per (language, label) from ``evaluation.reference.sets``, without any test text (compared
    case-, punctuation- and space-insensitively) and, for ``pool`` "strict", without any text the teacher may have
    seen (``seed_texts``: those generation recorded; None, not recorded, is an error). Also, per cell, how many
    distinct texts there were and how many of them the teacher may have seen."""
    if seed_texts is None:  # a dataset from before generation recorded them, or from another tool
        raise HfsynthError(
            f"the synthetic dataset does not record which real texts its teacher was shown ({TEACHER_SHOWN_FILE}, "
            "written by hfsynth generate): the human-data reference could train on them; generate it again "
            "(cached answers are reused) or leave out evaluation.reference")
    shown = {normalize(text) for text in texts_shown_to_the_teacher(recipe, seed_texts)}
    seen = {normalize(text) for text in labelled_texts(recipe, recipe.evaluation.sets)}  # test texts, then used ones
    texts: dict[Cell, list[str]] = defaultdict(list)
    counts: dict[Cell, list[int]] = defaultdict(lambda: [0, 0])
    for seed_set in recipe.evaluation.reference.sets:
        rows = load_labelled_set(seed_set, recipe.label_names)
        for text, label in zip(rows["text"], rows["label"], strict=True):
            key, cell = normalize(text), (seed_set.language, label)
            if key in seen:
                continue
            seen.add(key)  # a text repeated in the reference sets is used once
            counts[cell][0] += 1
            if key in shown:
                counts[cell][1] += 1
                if pool == "strict":
                    continue
            texts[cell].append(text)
    return dict(texts), {cell: (existed, shown_count) for cell, (existed, shown_count) in counts.items()}


def synthetic_counts(train: datasets.Dataset) -> Counter[Cell]:
    names = train.features["label"].names
    return Counter(zip(train["language"], (names[index] for index in train["label"]), strict=True))


def human_reference(recipe: Recipe, synthetic_train: datasets.Dataset, teacher_shown: Sequence[str] | None
                    ) -> tuple[datasets.Dataset, HumanReference]:
    """Real examples in the synthetic schema, as many per (language, label) as ``synthetic_train`` has (all there
    are where the pool is smaller), drawn with ``evaluation.reference.seed``: the human-data twin of a student's
    main training set; and the record of the pool and the sizes."""
    mode = recipe.evaluation.reference.pool
    pool, counts = reference_pool(recipe, teacher_shown, mode)
    rng = random.Random(recipe.evaluation.reference.seed)
    columns: dict[str, list[str]] = defaultdict(list)
    cells: dict[str, dict[str, ReferenceCell]] = defaultdict(dict)
    for (language, label), count in sorted(synthetic_counts(synthetic_train).items()):
        candidates = pool.get((language, label), [])
        drawn = rng.sample(candidates, min(count, len(candidates)))
        existed, shown = counts.get((language, label), (0, 0))
        cells[language][label] = ReferenceCell(existed=existed, shown=shown, left=len(candidates), human=len(drawn),
                                               synthetic=count)
        for text in drawn:
            for column, value in (("text", text), ("label", label), ("language", language), ("teacher", "human"),
                                  ("strategy", "human"), ("prompt_id", f"{language}/{label}/human")):
                columns[column].append(value)
    if not columns:
        raise HfsynthError("evaluation.reference.sets has no real example for any language and label of the "
                           "synthetic data (after removing test texts"
                           + (" and texts shown to the teacher)" if mode == "strict" else ")"))
    record = HumanReference(pool=mode, cells=dict(cells))
    return datasets.Dataset.from_dict(dict(columns), features=features(recipe.label_names)), record


def synthetic_at_human_size(synthetic_train: datasets.Dataset, record: HumanReference, seed: int
                            ) -> datasets.Dataset:
    """A label-balanced subsample of the synthetic data with exactly as many examples per (language, label) as the
    human training set has: what the human runs are compared with."""
    rows: dict[Cell, list[int]] = defaultdict(list)
    names = synthetic_train.features["label"].names
    for index, (language, label) in enumerate(zip(synthetic_train["language"], synthetic_train["label"],
                                                  strict=True)):
        rows[(language, names[label])].append(index)
    rng = random.Random(seed)
    keep = [index for (language, label), indices in sorted(rows.items())
            for index in rng.sample(indices, record.cells[language][label].human)]
    return synthetic_train.select(sorted(keep))


def pool_warnings(recipe: Recipe) -> list[str]:
    """One line per language where, with the default strict pool, the seed texts the plan's few-shot calls may show
    the teacher leave fewer human texts for some label than the synthetic data will have (``samples_per_label``).
    Said before anything is paid for; only for local files (a Hub set would be downloaded)."""
    reference = recipe.evaluation.reference
    sets = [*reference.sets, *recipe.generation.seeds, *recipe.evaluation.sets]
    if not recipe.reference_students or reference.pool == "all" or any(s.path is None for s in sets):
        return []
    shown = (seed_texts_the_plan_may_show(recipe, load_seed_examples(recipe))
             if recipe.generation.strategy == "few-shot" else [])
    pool, counts = reference_pool(recipe, shown)
    target = recipe.generation.samples_per_label
    lines = []
    for language in recipe.languages:
        left = {label: len(pool.get((language, label), [])) for label in recipe.label_names}
        if min(left.values()) >= target:
            continue
        existed = [counts.get((language, label), (0, 0))[0] for label in recipe.label_names]
        seen = [counts.get((language, label), (0, 0))[1] for label in recipe.label_names]
        lines.append(
            f"evaluation.reference, {language}: the plan's few-shot calls may show the teacher "
            f"{sum(seen) / len(seen):.1f} of the {sum(existed) / len(existed):.1f} real texts per label, which leaves "
            f"as few as {min(left.values())} (label {min(left, key=left.__getitem__)!r}) for the human runs where the "
            f"synthetic data will have up to {target}: the verdict then compares equal sizes on a synthetic "
            "subsample; evaluation.reference.pool: all trains the human runs on the whole split instead, as Pecher "
            "et al. did")
    return lines
