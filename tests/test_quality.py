"""The synthetic-data quality report: each measure on small fixed inputs whose answer is known, then the report on
real SIB-200 texts with the embedded MiniLM model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hfsynth.quality import SyntheticTexts, quality_report
from hfsynth.recipe.schema import QualityConfig, Recipe
from hfsynth.text_measures import compression_ratio, coverage, distinct_n, lexical, mean_pairwise_distance
from tests.student_helpers import LABELS, make_recipe, sib200_rows, write_test_set


def test_distinct_n_of_a_set_with_known_duplicates() -> None:
    assert distinct_n(["a b c", "a b c"], 1) == 0.5  # 3 unique words of 6
    assert distinct_n(["a b c", "A, b c!"], 2) == 0.5  # 2 unique bigrams of 4 (case and punctuation ignored)
    assert distinct_n(["a b", "c d"], 2) == 1.0
    assert distinct_n(["single"], 2) is None
    assert lexical(["a b", "c d"]) == {"distinct_1": 1.0, "distinct_2": 1.0, "compression_ratio": pytest.approx(
        compression_ratio(["a b", "c d"]))}


def test_repeated_texts_compress_better() -> None:
    varied = ["The team won the cup.", "A new hospital opened.", "Flights to Rome are cheap.", "Rain is coming."]
    assert compression_ratio(varied * 5) > 2 * compression_ratio(varied)
    assert compression_ratio([]) is None


def test_pairwise_distance_and_coverage_of_known_vectors() -> None:
    orthogonal = np.eye(3)
    assert mean_pairwise_distance(orthogonal) == pytest.approx(1.0)
    assert mean_pairwise_distance(np.tile([[1.0, 0.0]], (4, 1))) == pytest.approx(0.0)
    assert mean_pairwise_distance(orthogonal[:1]) is None
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidates = np.array([[np.cos(0.1), np.sin(0.1)]])  # cosine distance 1 - cos(0.1) ~ 0.005 to the first
    assert coverage(queries, candidates, distance=0.01) == 0.5
    assert coverage(queries, candidates, distance=1.0) == 1.0
    assert coverage(queries[:0], candidates, distance=1.0) is None


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def reference_recipe(tmp_path: Path, **quality: object) -> Recipe:
    sets = [{"language": language, "path": str(write_test_set(tmp_path, language))} for language in ("en", "de")]
    reference = [{"language": language, "path": str(write_rows(tmp_path / f"train-{language}.jsonl",
                                                                sib200_rows(language, "train")))}
                 for language in ("en", "de")]
    recipe = make_recipe(sets=sets, max_samples=30, reference={"sets": reference})
    return recipe.model_copy(update={"quality": QualityConfig(embedding_model="all-minilm-l6-v2", **quality)})


def test_report_on_real_texts(tmp_path: Path) -> None:
    recipe = reference_recipe(tmp_path)
    test_rows = sib200_rows("en", "test")
    # Synthetic stand-ins: real training sentences (the reference classifier should mostly agree with their labels),
    # one test sentence copied into it, one sentence of teacher chatter.
    synthetic_rows = [row for label in LABELS for row in
                      [row for row in sib200_rows("en", "train") if row["label"] == label][:5]]
    texts = [row["text"] for row in synthetic_rows] + [test_rows[0]["text"], "Here are two sentences about travel."]
    labels = [row["label"] for row in synthetic_rows] + [test_rows[0]["label"], "travel"]
    synthetic = SyntheticTexts(texts, labels, ["en"] * len(texts))
    plot = tmp_path / "projection.png"
    report = quality_report(recipe, synthetic, {"test_overlap": 3, "teacher_chatter": 2}, projection_path=plot)

    assert report.embedding_model == "sentence-transformers/all-MiniLM-L6-v2" and report.plot == plot.name
    assert report.test_overlap.to_json() == {"ngram": 8, "dropped": 3, "kept": 1}
    assert report.teacher_chatter.to_json() == {"dropped": 2, "kept": 1}
    assert set(report.languages) == {"en"}  # no German synthetic text: no German section
    english = report.languages["en"]
    assert english.synthetic_texts == 17 and english.test_texts == 30
    assert english.real_texts == 17  # an equal-size real sample
    assert 0 < english.coverage_distance < 1 and "median distance" in english.coverage_calibration
    for side in ("synthetic", "real"):
        assert 0 < getattr(english.lexical, side).distinct_1 <= 1
        assert 0 < getattr(english.pairwise_distance, side) < 1.5 and 0 <= getattr(english.coverage, side) <= 1
    assert set(english.labels) == set(LABELS) and english.labels["travel"].synthetic_texts == 6
    fidelity = report.fidelity
    assert fidelity.method == "reference classifier" and "logistic regression" in fidelity.classifier
    assert fidelity.judged_texts == 17 and fidelity.agreement >= 0.6
    assert 0.5 <= fidelity.classifier_test_accuracy["en"] <= 1
    with Image.open(plot) as image:
        assert image.format == "PNG"
        image.verify()


def test_a_synthetic_set_equal_to_the_test_set_covers_all_of_it(tmp_path: Path) -> None:
    recipe = reference_recipe(tmp_path, label_fidelity="teacher", coverage_distance=0.05)
    # The evaluated subset: max_samples 30, stratified, as the evaluation draws it.
    from hfsynth.realdata import load_test_sets

    english = next(test_set for test_set in load_test_sets(recipe) if test_set.language == "en")
    synthetic = SyntheticTexts(english.texts, english.labels, ["en"] * len(english.texts))
    judged = []

    def teacher(texts: list[str], languages: list[str]) -> list[str | None]:
        judged.extend(texts)
        return [None if index == 0 else english.labels[index] for index in range(len(texts))]

    report = quality_report(recipe, synthetic, {}, classify=teacher, teacher="test/teacher")
    section = report.languages["en"]
    assert section.coverage.synthetic == 1.0 and section.coverage_distance == 0.05
    assert section.coverage_calibration == "set in the recipe"
    assert section.mean_nearest_synthetic_distance == pytest.approx(0.0, abs=1e-5)
    assert report.test_overlap.kept == len(english.texts)
    # The teacher judged every text; one answer had no label and is left out of the agreement.
    assert judged == english.texts
    assert report.fidelity.to_json() == {"method": "teacher", "classifier": "the teacher test/teacher in classification "
                                  "mode (zero-shot)", "agreement": 1.0, "judged_texts": len(english.texts) - 1}
