"""A run folder made of typed records only (no model trained, no teacher called): for the card and pipeline tests."""

from __future__ import annotations

from pathlib import Path

from hfsynth.evaluation.results import EvaluationResults
from hfsynth.recipe.schema import Recipe
from hfsynth.runs.folder import RunFolder
from hfsynth.runs.records import GenerationStats, StudentMeta, TrainingRecord
from tests.student_helpers import LABELS, make_recipe, write_test_set

STUDENT = "setfit-minilm"
TEACHER_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def recipe_with_a_student(directory: Path) -> Recipe:
    sets = [{"language": language, "path": str(write_test_set(directory, language))} for language in ("en", "de")]
    return make_recipe([{"name": STUDENT, "kind": "setfit", "model": "all-minilm-l6-v2"}], sets=sets)


def generation_stats() -> GenerationStats:
    return GenerationStats(
        teacher=TEACHER_ID, strategy="zero-shot", calls=6, cached_calls=2, rounds=1, parsed_samples=20,
        kept_samples=18, dropped_samples=2, drop_reasons={"too short": 2},
        per_language_label={"en": {label: 3 for label in LABELS}, "de": {label: 3 for label in LABELS}},
        target_per_label=3, splits={"train": 16, "validation": 2},
    )


def student_meta(recipe: Recipe) -> StudentMeta:
    return StudentMeta(
        kind="setfit", labels=recipe.label_names, model="all-minilm-l6-v2",
        base_model="sentence-transformers/all-MiniLM-L6-v2", params={"num_iterations": 5, "seed": 0},
        training=TrainingRecord(train_size=None, train_rows=16, languages=["de", "en"], seed=0, repeat=0,
                                seconds=1.5, fingerprint="abc", hfsynth_version="0.1.0"),
    )


def _entry(role: str, model: str, kind: str, language: str, macro_f1: float) -> dict:
    matrix = {"labels": LABELS, "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
    return {"model": model, "role": role, "kind": kind, "language": language, "train_size": None, "n": 9,
            "repeats": 1, "macro_f1": macro_f1, "macro_f1_std": 0.0, "accuracy": macro_f1 + 0.01, "accuracy_std": 0.0,
            "texts_per_s": 10.0, "latency_ms": 5.0, "per_label_f1": {label: macro_f1 for label in LABELS},
            "confusion_matrix": matrix}


def evaluation_results(recipe: Recipe) -> EvaluationResults:
    summary = [_entry("teacher", TEACHER_ID, "zero-shot", "en", 0.40), _entry("teacher", TEACHER_ID, "zero-shot", "de", 0.30),
               _entry("student", STUDENT, "setfit", "en", 0.75), _entry("student", STUDENT, "setfit", "de", 0.65)]
    return EvaluationResults.model_validate({
        "recipe": recipe.name, "labels": recipe.label_names, "languages": ["en", "de"],
        "teacher": {"model": TEACHER_ID, "mode": "zero-shot", "demonstrations_per_label": 0},
        "rows": [], "summary": summary, "learning_curve": summary[2:],
    })


def fake_run(directory: Path, evaluated: bool = True) -> tuple[Recipe, RunFolder]:
    """A run with a dataset folder (its statistics only), a finished student (its meta and recipe only) and, when
    ``evaluated``, results and the comparison plot."""
    recipe = recipe_with_a_student(directory)
    run = RunFolder(directory / "run")
    run.dataset.root.mkdir(parents=True)
    generation_stats().save(run.dataset.stats)
    student = run.student(STUDENT)
    student.root.mkdir(parents=True)
    student.recipe.write_text(recipe.source_text, encoding="utf-8")
    student_meta(recipe).save(student.meta)
    if evaluated:
        evaluation_results(recipe).save(run.eval.results)
        run.eval.bars_plot.write_bytes(b"\x89PNG\r\n\x1a\n")
    return recipe, run
