"""The synthetic-data quality report: what the synthetic data is like, next to real data of the same language.

Li et al. (2023) relate how well synthetic data trains students to its diversity and its closeness to real data;
this report measures both, per language and label, always against the same measure on an equal-size sample of real
texts (diversity measures depend on how many texts they see):

- **lexical diversity**: distinct-1 and distinct-2 (unique word n-grams / all word n-grams) and the compression
  ratio (raw bytes / zlib bytes of the texts: higher is more repetitive);
- **semantic diversity**: mean pairwise cosine distance of sentence embeddings within each label;
- **coverage**: the share of real test texts whose nearest synthetic text lies within a stated cosine distance: how
  much of the real distribution the synthetic set reaches. Unless the recipe fixes it, the distance is calibrated
  per language as the median distance from a test text to its nearest neighbour in the equal-size real sample, so
  real data of the synthetic set's size would cover about half of the test set;
- **label fidelity**: how often a classifier other than the generator agrees with the label a text was written for
  (logistic regression on the embeddings of the real reference data, or the teacher in classification mode);
- **test overlap and teacher chatter**: what curation dropped for each, and what is left in the data.

Written to the dataset folder (``hfsynth.runs.folder.DatasetFolder.quality``, typed as
``hfsynth.runs.records.QualityReport``) with a 2-D projection plot (PCA) of synthetic vs real texts per label.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global figure state

from hfsynth.cache import CallCache, call_key
from hfsynth.dataset import load_synthetic_dataset, load_teacher_shown
from hfsynth.embeddings import Embedder, EmbeddingSpec
from hfsynth.generation.curation import ChatterCheck, TestOverlap, instruction_texts
from hfsynth.human_reference import reference_pool
from hfsynth.prompting import classification_prompt
from hfsynth.realdata import TestSet, labelled_texts, load_labelled_set, load_test_sets
from hfsynth.recipe.schema import Recipe
from hfsynth.runs.folder import DatasetFolder
from hfsynth.runs.records import GenerationStats, QualityReport
from hfsynth.teachers.cached import CachedTeacher, label_key
from hfsynth.teachers.spending import Spending
from hfsynth.text_measures import (
    coverage,
    embedding_model,
    leave_one_out_nearest,
    lexical,
    mean_pairwise_distance,
    nearest_distances,
    normalize,
)

if TYPE_CHECKING:
    from hfsynth.teachers import Teacher

logger = logging.getLogger(__name__)

#: Bump when the report's measures change: a stored report of another format is recomputed.
FORMAT = 1

#: A classifier of (texts, languages) -> one label (or None) per text: the teacher in classification mode.
Classify = Callable[[Sequence[str], Sequence[str]], list[str | None]]


# --- the report ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticTexts:
    texts: list[str]
    labels: list[str]
    languages: list[str]
    #: The real seed texts the teacher may have been shown (the dataset's ``teacher_shown.json``); None: not recorded.
    teacher_shown: tuple[str, ...] | None = ()

    def cell(self, language: str, label: str | None = None) -> list[str]:
        return [text for text, text_label, text_language in zip(self.texts, self.labels, self.languages, strict=True)
                if text_language == language and (label is None or text_label == label)]


def _real_pool(recipe: Recipe, teacher_shown: Sequence[str] | None) -> tuple[dict[tuple[str, str], list[str]], str]:
    """Real non-test texts per (language, label) to compare with, and where they come from."""
    if recipe.evaluation.reference.sets:
        return (reference_pool(recipe, teacher_shown)[0],
                "the reference training sets (texts shown to the teacher and test texts removed)")
    test = {normalize(text) for text in labelled_texts(recipe, recipe.evaluation.sets)}
    pool: dict[tuple[str, str], list[str]] = defaultdict(list)
    for seed_set in recipe.generation.seeds:
        rows = load_labelled_set(seed_set, recipe.label_names)
        for text, label in zip(rows["text"], rows["label"], strict=True):
            if normalize(text) not in test:
                pool[(seed_set.language, label)].append(text)
    return dict(pool), "the few-shot seed sets (test texts removed)" if pool else "none"


def _fidelity_by_reference(
    recipe: Recipe, embedder: Embedder, pool: dict[tuple[str, str], list[str]], synthetic: SyntheticTexts,
    test_sets: Sequence[TestSet],
) -> tuple[list[str | None], dict[str, Any]]:
    """Logistic regression on the embeddings of real reference texts (all languages together)."""
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(recipe.evaluation.reference.seed)
    texts, labels = [], []
    for (_, label), candidates in sorted(pool.items()):
        for text in rng.sample(candidates, min(recipe.quality.fidelity_examples_per_label, len(candidates))):
            texts.append(text)
            labels.append(label)
    if len(set(labels)) < 2:
        return [None] * len(synthetic.texts), {"method": "none", "note": "fewer than two labels in the reference data"}
    classifier = LogisticRegression(max_iter=2000)
    classifier.fit(embedder.encode(texts), labels)
    predicted = list(classifier.predict(embedder.encode(synthetic.texts)))
    # How far the judge itself can be trusted: its accuracy on the real test texts.
    test_accuracy = {test_set.language: float(np.mean(classifier.predict(embedder.encode(test_set.texts))
                                                      == np.array(test_set.labels)))
                     for test_set in test_sets}
    return predicted, {
        "method": "reference classifier",
        "classifier": f"logistic regression on {embedder.model_id} embeddings of {len(texts)} real reference texts "
                      f"(at most {recipe.quality.fidelity_examples_per_label} per label and language)",
        "classifier_test_accuracy": test_accuracy,
    }


def _label_fidelity(
    recipe: Recipe, embedder: Embedder, pool: dict[tuple[str, str], list[str]], synthetic: SyntheticTexts,
    test_sets: Sequence[TestSet], classify: Classify | None, teacher: str | None,
) -> tuple[list[str | None], dict[str, Any]]:
    """The label the fidelity judge gives each synthetic text (``None``: no verdict), and who the judge is."""
    method = _fidelity_method(recipe, classify)
    if method == "reference":
        return _fidelity_by_reference(recipe, embedder, pool, synthetic, test_sets)
    if method == "teacher" and classify is not None:
        return classify(synthetic.texts, synthetic.languages), {
            "method": "teacher",
            "classifier": f"the teacher {teacher or recipe.teacher.model} in classification mode (zero-shot)"}
    return [None] * len(synthetic.texts), {"method": "off"}


def _fidelity_method(recipe: Recipe, classify: Classify | None) -> str:
    choice = recipe.quality.label_fidelity
    if choice == "auto":
        return "reference" if recipe.evaluation.reference.sets else ("teacher" if classify else "off")
    if choice == "teacher" and classify is None:
        return "off"
    return choice


def _share(matches: Sequence[bool]) -> float | None:
    return float(np.mean(matches)) if matches else None


def _mean(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None


def _coverage_distance(
    recipe: Recipe, test_vectors: np.ndarray, real_vectors: np.ndarray
) -> tuple[float | None, str]:
    """The distance within which a test text counts as covered, and how it was chosen."""
    if recipe.quality.coverage_distance is not None:
        return recipe.quality.coverage_distance, "set in the recipe"
    if len(real_vectors) and len(test_vectors):
        # Real data of the synthetic set's size covers half the test texts at this distance: the yardstick.
        return (float(np.median(nearest_distances(test_vectors, real_vectors))),
                "median distance from a test text to its nearest neighbour in the equal-size real sample")
    if len(test_vectors) > 1:
        return (float(np.median(leave_one_out_nearest(test_vectors))),
                "median distance from a test text to its nearest other test text (no other real data)")
    return None, "no real test texts"


def _side_by_side(
    embedder: Embedder, synthetic: list[str], real: list[str], test: list[str], distance: float | None
) -> dict[str, Any]:
    """Counts, lexical and semantic diversity and coverage of the test texts, for the synthetic texts and the real
    sample alike."""
    synthetic_vectors = embedder.encode(synthetic)
    real_vectors = embedder.encode(real)
    test_vectors = embedder.encode(test)

    def covered(vectors: np.ndarray) -> float | None:
        return coverage(test_vectors, vectors, distance) if distance is not None else None

    return {
        "synthetic_texts": len(synthetic),
        "real_texts": len(real),
        "test_texts": len(test),
        "lexical": {"synthetic": lexical(synthetic), "real": lexical(real) if real else None},
        "pairwise_distance": {"synthetic": mean_pairwise_distance(synthetic_vectors),
                              "real": mean_pairwise_distance(real_vectors)},
        "coverage": {"synthetic": covered(synthetic_vectors), "real": covered(real_vectors)},
    }


def quality_report(
    recipe: Recipe,
    synthetic: SyntheticTexts,
    drop_counts: dict[str, int],
    classify: Classify | None = None,
    teacher: str | None = None,
    projection_path: Path | None = None,
    embeddings: Path | None = None,
) -> QualityReport:
    """The report for ``synthetic`` (the curated texts), with ``drop_counts`` from curation. ``classify``: the
    teacher in classification mode, used for label fidelity when there is no reference data (``teacher`` names it).
    ``embeddings``: the run's embedding store (:mod:`hfsynth.embeddings`).
    """
    test_sets = {test_set.language: test_set for test_set in load_test_sets(recipe)}
    pool, pool_source = _real_pool(recipe, synthetic.teacher_shown)
    model = embedding_model(recipe)
    logger.info("quality report: embedding %d synthetic texts with %s", len(synthetic.texts), model)
    embedder = Embedder(EmbeddingSpec(model), store=embeddings, normalize=True)
    rng = random.Random(recipe.evaluation.seed)

    judged, fidelity = _label_fidelity(recipe, embedder, pool, synthetic, list(test_sets.values()), classify,
                                       teacher)
    # (agrees, language, label) of every text the judge gave a label.
    agreement = [(judge == label, language, label) for judge, label, language
                 in zip(judged, synthetic.labels, synthetic.languages, strict=True) if judge is not None]
    fidelity["agreement"] = _share([agrees for agrees, _, _ in agreement])
    fidelity["judged_texts"] = len(agreement)

    languages: dict[str, Any] = {}
    projections: dict[str, dict[str, Any]] = {}
    for language in recipe.languages:
        texts = synthetic.cell(language)
        if not texts:
            continue
        # The equal-size real sample: per label as many real texts as synthetic ones (all there are, if fewer).
        real_by_label = {label: rng.sample(pool.get((language, label), []),
                                           min(len(synthetic.cell(language, label)),
                                               len(pool.get((language, label), []))))
                         for label in recipe.label_names}
        real = [text for label in recipe.label_names for text in real_by_label[label]]
        test_set = test_sets.get(language) or TestSet(language, [], [])
        synthetic_vectors, test_vectors = embedder.encode(texts), embedder.encode(test_set.texts)
        distance, calibration = _coverage_distance(recipe, test_vectors, embedder.encode(real))

        labels = {}
        for label in recipe.label_names:
            cell_test = [text for text, gold in zip(test_set.texts, test_set.labels, strict=True) if gold == label]
            labels[label] = _side_by_side(embedder, synthetic.cell(language, label), real_by_label[label], cell_test,
                                          distance)
            labels[label]["fidelity"] = _share([agrees for agrees, text_language, text_label in agreement
                                                if (text_language, text_label) == (language, label)])
        section = _side_by_side(embedder, texts, real, test_set.texts, distance)
        # Within each label, averaged over the labels: diversity inside a label, not the spread between labels.
        section["pairwise_distance"] = {side: _mean(labels[label]["pairwise_distance"][side] for label in labels)
                                        for side in ("synthetic", "real")}
        languages[language] = {
            **section,
            "coverage_distance": distance,
            "coverage_calibration": calibration,
            "mean_nearest_synthetic_distance": float(nearest_distances(test_vectors, synthetic_vectors).mean())
            if len(test_vectors) else None,
            "fidelity": _share([agrees for agrees, text_language, _ in agreement if text_language == language]),
            "labels": labels,
        }
        projections[language] = {"synthetic": (synthetic_vectors, [label for label, text_language in zip(
            synthetic.labels, synthetic.languages, strict=True) if text_language == language]),
            "test": (test_vectors, test_set.labels)}

    all_test_texts = labelled_texts(recipe, recipe.evaluation.sets)
    overlap = TestOverlap(all_test_texts, recipe.curation.test_overlap_ngram)
    chatter = ChatterCheck.for_task(recipe.label_names, instruction_texts(recipe),
                                    recipe.curation.instruction_echo_share)
    report = {
        "format": FORMAT,
        "embedding_model": embedder.model_id,
        "distance": "cosine distance (1 - cosine similarity) of sentence embeddings",
        "real_sample": f"per language and label, as many real texts as synthetic ones, drawn at random from "
                       f"{pool_source}",
        "languages": languages,
        "fidelity": fidelity,
        "test_overlap": {
            "ngram": recipe.curation.test_overlap_ngram,
            "dropped": drop_counts.get("test_overlap", 0),
            "kept": sum(overlap.shared(text) is not None for text in synthetic.texts),
        },
        "teacher_chatter": {
            "dropped": drop_counts.get("teacher_chatter", 0),
            "kept": sum(chatter.why(text) is not None for text in synthetic.texts),
        },
        "plot": projection_path.name if projection_path and projections else None,
    }
    if projection_path is not None and projections:
        plot_projection(recipe, projections, projection_path)
    return QualityReport.model_validate(report)


#: Panels per row of the projection plot: a language's labels wrap onto further rows.
PROJECTION_COLUMNS = 4


def plot_projection(recipe: Recipe, projections: dict[str, dict[str, Any]], path: Path) -> None:
    """One panel per language and label: synthetic (circles) and real test texts (crosses) of that label, over all
    the language's test texts (grey dots), in the first two principal components of that language's embeddings."""
    from sklearn.decomposition import PCA

    labels = recipe.label_names
    columns = min(PROJECTION_COLUMNS, len(labels))
    rows_per_language = -(-len(labels) // columns)
    figure = Figure(figsize=(2.8 * columns, 2.6 * rows_per_language * len(projections) + 0.8))
    axes = figure.subplots(rows_per_language * len(projections), columns, squeeze=False)
    for axis in axes.flat:
        axis.set_visible(False)
    for language_index, (language, parts) in enumerate(projections.items()):
        synthetic_vectors, synthetic_labels = parts["synthetic"]
        test_vectors, test_labels = parts["test"]
        stacked = np.vstack([synthetic_vectors, test_vectors]) if len(test_vectors) else synthetic_vectors
        if len(stacked) < 2:
            continue
        points = PCA(n_components=2, random_state=0).fit_transform(stacked)
        synthetic_points, test_points = points[: len(synthetic_vectors)], points[len(synthetic_vectors) :]
        for label_index, label in enumerate(labels):
            row, column = divmod(label_index, columns)
            axis = axes[language_index * rows_per_language + row][column]
            axis.set_visible(True)
            axis.scatter(test_points[:, 0], test_points[:, 1], s=8, color="0.85", marker=".")  # all real, context
            mine = [index for index, value in enumerate(test_labels) if value == label]
            axis.scatter(test_points[mine, 0], test_points[mine, 1], s=18, marker="x", color="tab:blue",
                         label="real test")
            ours = [index for index, value in enumerate(synthetic_labels) if value == label]
            axis.scatter(synthetic_points[ours, 0], synthetic_points[ours, 1], s=18, marker="o",
                         facecolors="none", edgecolors="tab:red", label="synthetic")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"{language}: {label}", fontsize="small")
    handles, names = next((axis.get_legend_handles_labels() for axis in axes.flat if axis.get_visible()), ([], []))
    figure.legend(handles, names, loc="lower center", ncol=2, fontsize="small")
    figure.suptitle(f"{recipe.name}: synthetic vs real test texts (PCA of sentence embeddings)", fontsize="medium")
    figure.tight_layout(rect=(0, 0.05, 1, 0.96))
    figure.savefig(path, dpi=110)


# --- the dataset folder ----------------------------------------------------------------------------------------------


def quality_fingerprint(recipe: Recipe, synthetic: SyntheticTexts, method: str) -> str:
    """What the report depends on: the texts, the recipe's quality, curation and evaluation settings."""
    return call_key(format=FORMAT, rows=list(zip(synthetic.texts, synthetic.labels, synthetic.languages, strict=True)),
                    quality=recipe.quality.model_dump(mode="json"), curation=recipe.curation.model_dump(mode="json"),
                    evaluation=recipe.evaluation.model_dump(mode="json", exclude={"bootstrap_resamples", "confidence"}),
                    seeds=recipe.generation.model_dump(mode="json"), method=method,
                    embeddings=embedding_model(recipe))


def synthetic_texts(dataset_dir: Path) -> SyntheticTexts:
    """Every curated text of a saved synthetic dataset (all splits), and the real texts its teacher was shown."""
    dataset = load_synthetic_dataset(dataset_dir)
    texts, labels, languages = [], [], []
    for split in dataset.values():
        names = split.features["label"].names
        texts += split["text"]
        labels += [names[index] for index in split["label"]]
        languages += split["language"]
    shown = load_teacher_shown(dataset_dir)
    return SyntheticTexts(texts, labels, languages, tuple(shown) if shown is not None else None)


def write_quality(
    recipe: Recipe,
    dataset_dir: Path,
    classify: Callable[[], Classify | None] = lambda: None,
    teacher: str | None = None,
    force: bool = False,
    embeddings: Path | None = None,
) -> QualityReport | None:
    """(Re)compute the quality report and its plot in a saved dataset folder; kept as it is when it was made from
    the same texts and settings (unless ``force``). ``classify`` is called only when the teacher judges fidelity.
    ``embeddings``: the run's embedding store. ``None`` when the recipe turns the report off."""
    folder = DatasetFolder(dataset_dir)
    if not recipe.quality.enabled:
        folder.quality.unlink(missing_ok=True)  # from an earlier run with the report on: no card may show it
        folder.quality_plot.unlink(missing_ok=True)
        return None
    synthetic = synthetic_texts(dataset_dir)
    method = _fidelity_method(recipe, classify=lambda texts, languages: [])  # the method if a teacher is given
    fingerprint = quality_fingerprint(recipe, synthetic, method)
    stored = QualityReport.load_if_present(folder.quality)
    if not force and stored is not None and stored.fingerprint == fingerprint:
        return stored
    stats = GenerationStats.load_if_present(folder.stats)
    report = quality_report(recipe, synthetic, stats.drop_reasons if stats else {},
                            classify() if method == "teacher" else None, teacher, folder.quality_plot, embeddings)
    report.fingerprint = fingerprint
    report.save(folder.quality)
    return report


def teacher_classifier(recipe: Recipe, teacher: Teacher, cache_path: Path) -> Classify:
    """The teacher in zero-shot classification mode, every answer through the run's call cache."""
    def classify(texts: Sequence[str], languages: Sequence[str]) -> list[str | None]:
        prompts = [classification_prompt(recipe, text, language)
                   for text, language in zip(texts, languages, strict=True)]
        keys = [label_key(teacher.model_id, teacher.uses_chat, prompt, recipe.label_names) for prompt in prompts]
        spending = Spending(recipe.teacher, "the quality report")  # within the budget, not in a stage's count
        with CallCache(cache_path) as cache:
            labels = CachedTeacher(teacher, cache, spending).classify(prompts, keys, recipe.label_names)
        return [label or None for label in labels]

    return classify
