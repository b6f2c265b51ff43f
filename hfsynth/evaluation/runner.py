"""Teacher against students on real, human-labelled test sets, per language: the question both papers ask.

For every language of ``recipe.evaluation.sets`` (stratified down to ``max_samples``), the teacher classifies each
text (zero-shot, or few-shot with ``teacher_examples_per_label`` real examples from the recipe's seed sets) and so
does every trained student run: the published student, its seed repeats and its learning-curve subsets. Scores are
macro-F1, accuracy, a per-label report and a confusion matrix (:mod:`hfsynth.metrics`), plus throughput (texts/s,
batched) and latency (one text at a time, measured on the first texts).

``OUT/eval/`` gets ``results.json``, ``report.md``, ``teacher_vs_students.png`` and ``learning_curve.png``. Teacher
answers are kept in ``teacher_predictions.jsonl`` as they arrive, so a re-run (or a killed run) never pays for a
teacher call twice.
"""

from __future__ import annotations

import gc
import json
import logging
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global figure state
from matplotlib.ticker import MaxNLocator
from tqdm.auto import tqdm

from hfsynth.cache import call_key
from hfsynth.embedded import base_model_id
from hfsynth.errors import HfsynthError
from hfsynth.metrics import classification_scores
from hfsynth.prompts import classification_prompt, prompt_fingerprint
from hfsynth.realdata import examples_by_label, load_labelled_set, stratified_sample
from hfsynth.recipe import Recipe
from hfsynth.run_folder import EvalFolder, RunFolder
from hfsynth.run_records import EvaluationResults, SummaryEntry
from hfsynth.students import StudentRun, planned_runs, run_params
from hfsynth.students.base import Student, read_meta
from hfsynth.teachers import LabelScores, Teacher, load_teacher
from hfsynth.templates import render

logger = logging.getLogger(__name__)

#: The first texts of a set are classified one at a time: their mean wall time is the reported latency.
LATENCY_TEXTS = 3
#: Texts per ``predict_proba`` call when timing a student (it batches internally); also the progress bar's step.
STUDENT_CHUNK = 64


@dataclass(frozen=True)
class TestSet:
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


def latency_then_batches(indices: Sequence[int], batch_size: int) -> list[list[int]]:
    """The order texts are classified in: the first few one at a time (their wall time is the latency), the rest
    in chunks of ``batch_size`` (their wall time gives the throughput)."""
    alone = [[index] for index in indices[:LATENCY_TEXTS]]
    rest = indices[LATENCY_TEXTS:]
    return alone + [list(rest[start : start + batch_size]) for start in range(0, len(rest), batch_size)]


def speed(seconds: Sequence[float], batch_sizes: Sequence[int]) -> dict[str, float | None]:
    """Throughput (texts/s) over the batched texts (over all when none was batched), latency over the single ones.

    ``seconds[i]``: text i's share of its chunk's wall time; ``batch_sizes[i]``: the size of that chunk.
    """
    batched = [value for value, size in zip(seconds, batch_sizes, strict=True) if size > 1] or list(seconds)
    single = [value for value, size in zip(seconds, batch_sizes, strict=True) if size == 1]
    return {
        "texts_per_s": len(batched) / sum(batched) if sum(batched) > 0 else None,
        "latency_ms": 1000 * statistics.fmean(single) if single else None,
    }


class TeacherPredictions:
    """The teacher's answers on disk, one JSON line each, appended as soon as a chunk returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.is_file():
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():  # a line cut short by a kill is dropped, not fatal
                        try:
                            record = json.loads(line)
                        except json.JSONDecodeError:
                            continue
                        self.records[record["key"]] = record

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                self.records[record["key"]] = record


class _TeacherSession:
    """Loads the recipe's teacher only when an answer is not cached yet, and closes it at the end."""

    def __init__(self, recipe: Recipe, teacher: Teacher | None) -> None:
        self.recipe = recipe
        self.teacher = teacher
        self.owned = teacher is None
        config = recipe.teacher
        self.model_id = teacher.model_id if teacher else (
            base_model_id(config.model) if config.backend == "local" else config.model
        )

    def get(self) -> Teacher:
        if self.teacher is None:
            logger.info("loading the teacher %s", self.model_id)
            self.teacher = load_teacher(self.recipe.teacher)
        return self.teacher

    def close(self) -> None:
        if self.owned and self.teacher is not None:
            self.teacher.close()
            self.teacher = None
            gc.collect()


def evaluate_teacher(
    recipe: Recipe, test_set: TestSet, session: _TeacherSession, cache: TeacherPredictions
) -> dict[str, Any]:
    demonstrations = teacher_demonstrations(recipe, test_set)
    prompts = [classification_prompt(recipe, text, test_set.language, demonstrations) for text in test_set.texts]
    keys = [
        call_key(model=session.model_id, language=test_set.language, text=text, prompt=prompt_fingerprint(prompt))
        for text, prompt in zip(test_set.texts, prompts, strict=True)
    ]
    missing = [index for index, key in enumerate(keys) if key not in cache.records]
    if missing:
        teacher = session.get()
        logger.info("teacher: classifying %d %s texts (%d cached)", len(missing), test_set.language,
                    len(keys) - len(missing))

        # Written to the cache per chunk: a killed run keeps every chunk that returned.
        for chunk in tqdm(latency_then_batches(missing, teacher.batch_size), desc=f"teacher {test_set.language}",
                          unit="batch"):
            started = time.perf_counter()
            answers = teacher.classify([prompts[index] for index in chunk], recipe.label_names)
            per_text = (time.perf_counter() - started) / len(chunk)
            cache.add(
                {"key": keys[index], "model": session.model_id, "language": test_set.language,
                 "text": test_set.texts[index], "probabilities": answer.probabilities, "raw": answer.raw,
                 "seconds": per_text, "batch_size": len(chunk)}
                for index, answer in zip(chunk, answers, strict=True)
            )
    records = [cache.records[key] for key in keys]
    predicted = [LabelScores(record["probabilities"]).label for record in records]
    return {
        "model": session.model_id,
        "role": "teacher",
        "kind": "few-shot" if demonstrations else "zero-shot",
        "demonstrations_per_label": recipe.evaluation.teacher_examples_per_label,
        "language": test_set.language,
        "train_size": None,
        "seed": None,
        **classification_scores(test_set.labels, predicted, recipe.label_names),
        **speed([record["seconds"] for record in records], [record["batch_size"] for record in records]),
    }


def evaluate_student(recipe: Recipe, run: StudentRun, student: Student, test_set: TestSet) -> dict[str, Any]:
    count = len(test_set.texts)
    probabilities = np.zeros((count, len(recipe.label_names)), dtype=np.float32)
    seconds, batch_sizes = [0.0] * count, [0] * count
    chunks = latency_then_batches(range(count), STUDENT_CHUNK)
    for chunk in tqdm(chunks, desc=f"{run.config.name} {test_set.language}", unit="batch", leave=False):
        started = time.perf_counter()
        texts = [test_set.texts[index] for index in chunk]
        probabilities[chunk] = student.predict_proba(texts, [test_set.language] * len(chunk))
        elapsed = time.perf_counter() - started
        for index in chunk:
            seconds[index], batch_sizes[index] = elapsed / len(chunk), len(chunk)
    predicted = [recipe.label_names[index] for index in probabilities.argmax(axis=1)]
    scores = classification_scores(test_set.labels, predicted, recipe.label_names)
    del scores["unparseable"]  # a student always answers with a label
    training = student.training
    assert training is not None  # a loaded student always has its training record
    return {
        "model": run.config.name,
        "role": "student",
        "kind": run.config.kind,
        "base_model": base_model_id(run.config.model),
        "language": test_set.language,
        "train_size": run.train_size,
        # Per label and language, on average: the learning curve's x (a subset can be short of some cells).
        "train_examples_per_label": training.train_rows / (len(recipe.label_names) * len(training.languages)),
        "seed": training.seed,
        **scores,
        **speed(seconds, batch_sizes),
    }


def _check_trained(recipe: Recipe, runs: Sequence[StudentRun]) -> None:
    """Every planned run is trained, with the recipe's current settings (else its scores would mislead)."""
    for run in runs:
        meta = read_meta(run.directory)
        if meta is None:
            raise HfsynthError(f"student {run.config.name!r} is not trained yet ({run.directory}): run hfsynth train")
        expected = run_params(run).model_dump(mode="json")
        if (meta.kind, meta.model, meta.params) != (run.config.kind, run.config.model, expected):
            raise HfsynthError(
                f"student {run.config.name!r} in {run.directory} was trained with other settings than the recipe's: "
                "run hfsynth train again"
            )


def _mean(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present else None


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over the seed repeats of each (model, language, training size).

    The confusion matrix is the first repeat's (for the main run: the published student's)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["role"], row["model"], row["kind"], row["language"], row["train_size"])].append(row)
    summary = []
    for (role, model, kind, language, train_size), group in groups.items():
        entry: dict[str, Any] = {"model": model, "role": role, "kind": kind, "language": language,
                                 "train_size": train_size, "n": group[0]["n"], "repeats": len(group)}
        for metric in ("macro_f1", "accuracy"):
            values = [row[metric] for row in group]
            entry[metric] = statistics.fmean(values)
            entry[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        for field in ("train_examples_per_label", "unparseable", "texts_per_s", "latency_ms"):
            if field in group[0]:
                entry[field] = _mean(row[field] for row in group)
        entry["per_label_f1"] = {label: statistics.fmean(row["per_label"][label]["f1"] for row in group)
                                 for label in group[0]["per_label"]}
        entry["confusion_matrix"] = group[0]["confusion_matrix"]
        summary.append(entry)
    return summary


# --- report and plots ---------------------------------------------------------------------------------------------

#: In the package's templates (the top-level cards/ folder).
REPORT_TEMPLATE = "evaluation_report.md"


def _score(entry: SummaryEntry, metric: str) -> str:
    value, spread = getattr(entry, metric), getattr(entry, f"{metric}_std")
    return f"{value:.3f} ± {spread:.3f}" if entry.repeats > 1 else f"{value:.3f}"


def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _display_name(role: str, model: str) -> str:
    return f"{model} (teacher)" if role == "teacher" else model


def render_report(results: EvaluationResults) -> str:
    languages = results.languages
    main = results.headline
    models = results.headline_models()

    def metric_lines(metric: str) -> list[dict[str, Any]]:
        lines = []
        for role, model, kind in models:
            entries = [results.headline_entry(role, model, language) for language in languages]
            present = [getattr(entry, metric) for entry in entries if entry]
            lines.append({
                "model": _display_name(role, model),
                "kind": kind,
                "cells": [_score(entry, metric) if entry else "–" for entry in entries],
                "mean": f"{statistics.fmean(present):.3f}" if present else "–",
            })
        return lines

    speed_lines = []
    for role, model, _ in models:
        entries = [entry for entry in main if (entry.role, entry.model) == (role, model)]
        speed_lines.append({
            "model": _display_name(role, model),
            "texts_per_s": _number(_mean(entry.texts_per_s for entry in entries)),
            "latency_ms": _number(_mean(entry.latency_ms for entry in entries)),
            "unparseable": _number(_mean(entry.unparseable for entry in entries) * 100, 1) + " %"
            if role == "teacher" else "–",
        })
    curve = [
        {"model": entry.model, "language": entry.language, "repeats": entry.repeats,
         "size": "all" if entry.train_size is None else entry.train_size,
         "macro_f1": _score(entry, "macro_f1"), "accuracy": _score(entry, "accuracy")}
        for entry in results.learning_curve
    ]
    per_label = {
        language: [
            {"model": entry.display_name,
             "cells": [f"{entry.per_label_f1[label]:.3f}" for label in results.labels]}
            for entry in main if entry.language == language
        ]
        for language in languages
    }
    confusion = [
        {"model": entry.display_name, "language": entry.language,
         "labels": entry.confusion_matrix.labels,
         "rows": list(zip(entry.confusion_matrix.labels, entry.confusion_matrix.matrix, strict=False))}
        for entry in main
    ]
    return render(
        REPORT_TEMPLATE,
        recipe=results.recipe,
        teacher=results.teacher,
        languages=languages,
        labels=results.labels,
        macro_f1=metric_lines("macro_f1"),
        accuracy=metric_lines("accuracy"),
        speed=speed_lines,
        curve=curve if any(entry.train_size is not None for entry in results.learning_curve) else [],
        per_label=per_label,
        confusion=confusion,
        # The report sits beside its plots in the eval folder.
        bars_plot=EvalFolder(Path()).bars_plot.name,
        curve_plot=EvalFolder(Path()).curve_plot.name,
    )


def plot_teacher_vs_students(results: EvaluationResults, path: Path) -> None:
    """Grouped bars: one group per language, one bar per model (students on all their data), macro-F1 ± std."""
    languages = results.languages
    models = [(role, model) for role, model, _ in results.headline_models()]
    figure = Figure(figsize=(max(6.0, 0.5 * len(languages) * (len(models) + 1)), 4.8))
    axes = figure.subplots()
    width = 0.8 / len(models)
    positions = np.arange(len(languages))
    for index, (role, model) in enumerate(models):
        entries = [results.headline_entry(role, model, language) for language in languages]
        axes.bar(
            positions + (index - (len(models) - 1) / 2) * width,
            [entry.macro_f1 if entry else 0.0 for entry in entries],
            width,
            yerr=[entry.macro_f1_std if entry else 0.0 for entry in entries],
            capsize=3,
            label=_display_name(role, model),
            hatch="//" if role == "teacher" else None,
        )
    axes.set_xticks(positions, languages)
    axes.set_ylim(0, 1)
    axes.set_ylabel("macro-F1 on real test data")
    axes.set_title(f"{results.recipe}: teacher vs students")
    axes.grid(axis="y", alpha=0.3)
    figure.legend(fontsize="small", loc="lower center", ncol=min(3, len(models)))
    figure.tight_layout(rect=(0, 0.06 * (1 + (len(models) - 1) // 3), 1, 1))
    figure.savefig(path, dpi=120)


def plot_learning_curve(results: EvaluationResults, path: Path) -> None:
    """Macro-F1 against synthetic examples per label, one panel per language; the teacher as a dashed line."""
    languages = results.languages
    columns = min(3, len(languages))
    rows = -(-len(languages) // columns)
    figure = Figure(figsize=(4.5 * columns, 3.5 * rows))
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True)
    for axis, language in zip(axes.flat, languages, strict=False):
        for teacher in (entry for entry in results.headline if entry.role == "teacher" and entry.language == language):
            axis.axhline(teacher.macro_f1, linestyle="--", color="black", label=teacher.display_name)
        curve = [entry for entry in results.learning_curve if entry.language == language]
        for model in dict.fromkeys(entry.model for entry in curve):
            points = sorted((entry for entry in curve if entry.model == model),
                            key=lambda entry: entry.train_examples_per_label or 0.0)
            axis.errorbar([point.train_examples_per_label for point in points],
                          [point.macro_f1 for point in points],
                          yerr=[point.macro_f1_std for point in points], marker="o", capsize=3, label=model)
        axis.set_title(language)
        axis.set_xlabel("synthetic examples per label")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(languages):]:
        axis.set_visible(False)
    axes[0][0].set_ylabel("macro-F1 on real test data")
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, fontsize="small", loc="lower center", ncol=min(4, len(handles)))
    figure.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    figure.savefig(path, dpi=120)


# --- entry point --------------------------------------------------------------------------------------------------


def run_evaluation(recipe: Recipe, out_dir: Path, teacher: Teacher | None = None) -> EvaluationResults:
    """Evaluate the teacher and every trained student run on the recipe's real test sets; write ``OUT/eval/``.

    ``teacher``: an already loaded teacher to use; by default the recipe's is loaded, and only when some answer is
    not cached yet. Returns what ``results.json`` holds.
    """
    if not recipe.evaluation.sets:
        raise HfsynthError("the recipe has no evaluation.sets: there is no real test data to evaluate on")
    eval_dir = RunFolder(out_dir).eval
    runs = planned_runs(recipe, out_dir)
    _check_trained(recipe, runs)
    test_sets = load_test_sets(recipe)

    rows = []
    session = _TeacherSession(recipe, teacher)
    cache = TeacherPredictions(eval_dir.teacher_predictions)
    try:
        for test_set in test_sets:
            rows.append(evaluate_teacher(recipe, test_set, session, cache))
    finally:
        session.close()
    for run in tqdm(runs, desc="students", unit="run"):
        student = Student.load(run.directory)
        rows += [evaluate_student(recipe, run, student, test_set) for test_set in test_sets]
        del student
        gc.collect()  # one model in memory at a time

    student_rows = [row for row in rows if row["role"] == "student"]
    results = EvaluationResults.model_validate({
        "recipe": recipe.name,
        "labels": recipe.label_names,
        "languages": [test_set.language for test_set in test_sets],
        "teacher": {"model": session.model_id,
                    "mode": rows[0]["kind"],
                    "demonstrations_per_label": recipe.evaluation.teacher_examples_per_label},
        "rows": rows,
        # Teacher and students trained on all the synthetic data: the headline comparison.
        "summary": summarize([row for row in rows if row["train_size"] is None]),
        "learning_curve": sorted(summarize(student_rows),
                                 key=lambda entry: (entry["model"], entry["language"],
                                                    entry["train_examples_per_label"])),
    })
    results.save(eval_dir.results)
    plot_teacher_vs_students(results, eval_dir.bars_plot)
    plot_learning_curve(results, eval_dir.curve_plot)
    eval_dir.report.write_text(render_report(results), encoding="utf-8")
    return results
