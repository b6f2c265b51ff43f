"""Synthetic against human data on fixed predictions whose answers are known: the summary's verdicts and ratios,
and the benchmark script that reports them (its reductions of a recipe, its table)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from hfsynth.cli.display import results_rows
from hfsynth.errors import HfsynthError
from hfsynth.evaluation.results import EvaluationResults, ResultRow
from hfsynth.evaluation.summary import ScoredRun, build_results
from hfsynth.metrics import classification_scores
from hfsynth.realdata import TestSet
from hfsynth.recipes.files import load_recipe
from tests.student_helpers import LABELS, make_recipe

ROOT = Path(__file__).resolve().parents[1]


def benchmark_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_vs_human", ROOT / "benchmarks" / "synthetic_vs_human.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GOLD = [LABELS[index % 3] for index in range(60)]
PERFECT = list(GOLD)
# Right on the first 30 texts only; on the others it names the next label.
HALF = [label if index < 30 else LABELS[(LABELS.index(label) + 1) % 3] for index, label in enumerate(GOLD)]


def scored(role: str, model: str, predicted: list[str | None], data: str | None = None, seed: int = 0,
           examples_per_label: float = 4.0) -> ScoredRun:
    row = {"model": model, "role": role, "kind": "zero-shot" if role == "teacher" else "setfit", "language": "en",
           "train_size": None, "seed": None if role == "teacher" else seed,
           **classification_scores(GOLD, predicted, LABELS), "texts_per_s": 1.0, "latency_ms": 1.0}
    if role == "student":
        row |= {"data": data, "train_examples_per_label": examples_per_label}
        del row["unparseable"]
    return ScoredRun(ResultRow(**row), predicted)


def results_of(*runs: ScoredRun) -> EvaluationResults:
    recipe = make_recipe()
    return build_results(recipe, list(runs), [TestSet("en", list(map(str, range(60))), GOLD)], "test/teacher")


def test_a_student_as_good_as_its_human_twin_reaches_100_percent_with_no_clear_difference() -> None:
    results = results_of(scored("teacher", "test/teacher", HALF), scored("student", "s", PERFECT, "synthetic"),
                         scored("student", "s", PERFECT, "human"))
    (row,) = results.synthetic_vs_human
    assert (row.synthetic_macro_f1, row.human_macro_f1) == (1.0, 1.0)
    assert row.comparison.ratio == 1.0 and row.comparison.ratio_ci == [1.0, 1.0]
    assert row.comparison.macro_f1_difference_ci == [0.0, 0.0] and row.comparison.statement == "no clear difference"
    synthetic = next(entry for entry in results.summary if entry.data == "synthetic")
    assert synthetic.vs_teacher.statement == "beats the teacher" and synthetic.vs_teacher.ratio == pytest.approx(2.0)
    assert [entry.display_name for entry in results.summary] == ["test/teacher (teacher)", "s", "s (human data)"]
    assert [entry.model for entry in results.headline] == ["test/teacher", "s"]


def test_a_student_worse_than_its_human_twin_is_below_human_data_with_the_ratio_of_the_scores() -> None:
    results = results_of(scored("teacher", "test/teacher", PERFECT), scored("student", "s", HALF, "synthetic"),
                         scored("student", "s", PERFECT, "human"))
    (row,) = results.synthetic_vs_human
    half = classification_scores(GOLD, HALF, LABELS)["macro_f1"]
    assert row.comparison.ratio == pytest.approx(half) and row.comparison.statement == "below human data"
    low, high = row.comparison.ratio_ci
    assert low < half < high < 1.0
    assert results.summary[1].vs_teacher.statement == "below the teacher"

    benchmark = benchmark_module()
    (line,) = benchmark.comparison_rows(results)
    assert line["ratio"] == pytest.approx(half) and line["verdict"] == "below human data"
    assert line["examples_per_label"] == {"synthetic": 4.0, "human": 4.0} and line["n"] == 60
    assert line["synthetic_vs_teacher"] == "below the teacher" and line["teacher_macro_f1"] == 1.0
    table = benchmark.markdown([line], "topics", {}, 0.95)
    assert f"| s | en | 60 | 4.0 | {half:.3f} [" in table and f"| {half:.0%} [" in table
    assert "reduced" not in table


def test_a_smaller_human_pool_is_compared_with_synthetic_data_of_its_size_and_the_full_run_said_apart() -> None:
    """Pecher et al.'s question at equal sizes: 187 synthetic examples per label against 20 human ones would
    credit the synthetic data with its size. The verdict takes the synthetic run at the human size; the full run is
    a separate line."""
    results = results_of(scored("teacher", "test/teacher", HALF),
                         scored("student", "s", PERFECT, "synthetic", examples_per_label=187.0),
                         scored("student", "s", HALF, "synthetic-at-human-size", examples_per_label=20.0),
                         scored("student", "s", PERFECT, "human", examples_per_label=20.0))
    (row,) = results.synthetic_vs_human
    half = classification_scores(GOLD, HALF, LABELS)["macro_f1"]
    assert row.synthetic_examples_per_label == row.human_examples_per_label == 20.0
    assert row.synthetic_macro_f1 == pytest.approx(half) and row.comparison.statement == "below human data"
    assert (row.full_synthetic_macro_f1, row.full_synthetic_examples_per_label) == (1.0, 187.0)
    assert "with all its synthetic data (9.3x the examples) the student scores 1.000" in row.sizes_text()
    assert row.equal_size_text().startswith("human data at equal size (20.0 examples per label each;")
    # The published student (all the synthetic data) is what tables and cards show against the teacher; the
    # equal-size run is only the synthetic side of the human comparison.
    assert [(entry.model, entry.data) for entry in results.headline] == [("test/teacher", None), ("s", "synthetic")]
    full = results.headline[1]
    assert full.vs_teacher.statement == "beats the teacher" and full.vs_human is None
    assert results.across_languages("s") == ("vs the teacher: better in 1 of 1 languages, no clear difference in 0, "
                                             "worse in 0; vs human data (same size): better in 0 of 1 languages, "
                                             "no clear difference in 0, worse in 1")
    assert all(entry.data != "synthetic-at-human-size" for entry in results.learning_curve)
    student_row = next(row for row in results_rows(results) if row["role"] == "student")
    assert (student_row["vs_human"], student_row["vs_human_ratio"]) == ("below human data", row.comparison.ratio)


def test_seed_repeats_are_averaged_before_the_comparison() -> None:
    results = results_of(scored("teacher", "test/teacher", HALF), scored("student", "s", PERFECT, "synthetic", 0),
                         scored("student", "s", HALF, "synthetic", 1), scored("student", "s", PERFECT, "human"))
    synthetic = results.summary[1]
    half = classification_scores(GOLD, HALF, LABELS)["macro_f1"]
    assert synthetic.repeats == 2 and synthetic.macro_f1 == pytest.approx((1 + half) / 2)
    assert results.synthetic_vs_human[0].comparison.ratio == pytest.approx((1 + half) / 2)


def test_the_benchmark_reduces_the_multilingual_recipe_and_says_what_it_cut() -> None:
    benchmark = benchmark_module()
    recipe = load_recipe(ROOT / "recipes" / "sib200-multilingual.yaml")
    same, none = benchmark.reduce_recipe(recipe)
    assert same is recipe and none == {}
    reduced, cut = benchmark.reduce_recipe(recipe, languages=["en", "sw"], samples_per_label=4, max_samples=21,
                                           students=["setfit-e5"])
    assert reduced.languages == ["en", "sw"] and reduced.generation.samples_per_label == 4
    assert [s.language for s in reduced.generation.seeds] == ["en", "sw"]
    assert [s.language for s in reduced.evaluation.sets] == [s.language for s in reduced.evaluation.reference.sets]
    assert [student.name for student in reduced.students] == ["setfit-e5"] and reduced.evaluation.max_samples == 21
    assert cut["languages"] == {"recipe": ["en", "de", "sw", "id"], "run": ["en", "sw"]}
    assert cut["samples_per_label"] == {"recipe": 8, "run": 4}
    table = benchmark.markdown([], reduced.name, cut, 0.95)
    assert "(reduced run)" in table and "languages ['en', 'sw'] instead of ['en', 'de', 'sw', 'id']" in table
    with pytest.raises(HfsynthError, match="--languages"):
        benchmark.reduce_recipe(recipe, languages=["fr"])
