"""Teacher against students on real, human-labelled test sets, per language: the question both papers ask.

For every language of ``recipe.evaluation.sets`` (stratified down to ``max_samples``), the teacher classifies each
text (zero-shot, or few-shot with ``teacher_examples_per_label`` real examples from the recipe's seed sets) and so
does every trained student run: the published student, its seed repeats, its learning-curve subsets and, with real
reference data, the same runs trained on human data. Scores are macro-F1, accuracy, a per-label report and a
confusion matrix (:mod:`hfsynth.metrics`), plus throughput (texts/s, batched) and latency (one text at a time,
measured on the first texts); :mod:`hfsynth.evaluation.summary` adds bootstrap intervals and verdicts.

The eval folder (``hfsynth.runs.folder.EvalFolder``) gets the results, the report, the plots and every prediction
(so the intervals are recomputable). Teacher answers go to the run's call cache as they arrive, as generation's do,
so a re-run (or a killed run) never pays for a teacher call twice. The dataset's quality report is recomputed when
its inputs changed. Each student run is one unit of work for the engine (:mod:`hfsynth.engines.base`): loaded once,
scored on every test set.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hfsynth.cache import CallCache
from hfsynth.embedded import base_model_id
from hfsynth.embeddings import EmbeddingTables
from hfsynth.engines.base import LOCAL, Engine, UnitSpec, UnitsProgress, gather
from hfsynth.errors import HfsynthError
from hfsynth.evaluation.plots import (
    plot_feedback_rounds,
    plot_learning_curve,
    plot_synthetic_vs_human,
    plot_teacher_vs_students,
)
from hfsynth.evaluation.report import render_report
from hfsynth.evaluation.results import EvaluationResults, ResultRow
from hfsynth.evaluation.summary import ScoredRun, build_results
from hfsynth.metrics import classification_scores
from hfsynth.prompting import LabelScores, classification_prompt
from hfsynth.quality import teacher_classifier, write_quality
from hfsynth.realdata import TestSet, load_test_sets, teacher_demonstrations
from hfsynth.recipe.schema import Recipe
from hfsynth.repo_ids import teacher_public_id
from hfsynth.runs.folder import RunFolder
from hfsynth.runs.records import FeedbackReport, HumanReference, QualityReport
from hfsynth.storage.mirror import FolderAccess, unit_folders
from hfsynth.students.base import Student, read_meta
from hfsynth.teachers.base import Teacher
from hfsynth.teachers.cached import CachedTeacher, evaluation_key
from hfsynth.teachers.spending import Spending
from hfsynth.training import StudentRun, embedding_spec, embedding_tables, run_params, runs_to_evaluate

logger = logging.getLogger(__name__)

#: The first texts of a set are classified one at a time: their mean wall time is the reported latency.
LATENCY_TEXTS = 3
#: Texts per ``predict_proba`` call when timing a student (it batches internally); also the progress bar's step.
STUDENT_CHUNK = 64


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


class _TeacherSession:
    """Loads the recipe's teacher only when an answer is not cached yet, and closes it at the end."""

    def __init__(self, recipe: Recipe, teacher: Teacher | None, engine: Engine | None = None) -> None:
        self.recipe = recipe
        self.engine = engine or LOCAL
        self.teacher = teacher
        self.owned = teacher is None
        self.model_id = teacher.model_id if teacher else teacher_public_id(recipe.teacher)

    def get(self) -> Teacher:
        if self.teacher is None:
            logger.info("loading the teacher %s", self.model_id)
            self.teacher = self.engine.load_teacher(self.recipe)
        return self.teacher

    def close(self) -> None:
        if self.owned and self.teacher is not None:
            self.teacher.close()
            self.teacher = None
            gc.collect()


def evaluate_teacher(recipe: Recipe, test_set: TestSet, session: _TeacherSession, cache: CallCache,
                     spending: Spending | None = None) -> ScoredRun:
    demonstrations = teacher_demonstrations(recipe, test_set)
    prompts = [classification_prompt(recipe, text, test_set.language, demonstrations) for text in test_set.texts]
    keys = [evaluation_key(session.model_id, test_set.language, text, prompt)
            for text, prompt in zip(test_set.texts, prompts, strict=True)]
    # Each answer is cached with its batch's timing: the latency and throughput of the report.
    values = CachedTeacher(session.get, cache, spending).classify(prompts, keys, recipe.label_names, record=_record,
                                                         batching=latency_then_batches, progress=test_set.language)
    answered = [json.loads(value) for value in values]
    predicted = [LabelScores(record["probabilities"]).label for record in answered]
    scores = classification_scores(test_set.labels, predicted, recipe.label_names)
    return ScoredRun(ResultRow(**{
        "model": session.model_id,
        "role": "teacher",
        "kind": "few-shot" if demonstrations else "zero-shot",
        "demonstrations_per_label": recipe.evaluation.teacher_examples_per_label,
        "language": test_set.language,
        "train_size": None,
        "seed": None,
        **scores,  # with the share of unparseable answers (a remote teacher may name no label)
        **speed([record["seconds"] for record in answered], [record["batch_size"] for record in answered]),
    }), predicted)


def _record(answer: LabelScores, seconds: float, batch_size: int) -> str:
    return json.dumps({"probabilities": answer.probabilities, "raw": answer.raw, "seconds": seconds,
                       "batch_size": batch_size}, ensure_ascii=False)


@dataclass(frozen=True)
class EvaluationContext:
    """What every student evaluation of a recipe shares (sent once to a cluster's workers)."""

    recipe: Recipe
    test_sets: tuple[TestSet, ...]
    #: How the evaluations reach the students' folders (directly, or staged from the run folder's object storage).
    folders: FolderAccess = field(default_factory=FolderAccess)
    #: The test texts' embeddings, per pretrained model a student embeds with (``training.embedding_tables``).
    embeddings: EmbeddingTables = field(default_factory=dict)


def evaluate_run(context: EvaluationContext, run: StudentRun) -> list[ScoredRun]:
    """One trained student run on every test set: the evaluation stage's unit of work (whichever engine runs it).
    The student is loaded once for all its languages."""
    with context.folders.staged(run.directory, write=False) as directory:
        student = Student.load(directory)
    student.embedding_table = context.embeddings.get(embedding_spec(run))
    return [evaluate_student(context.recipe, run, student, test_set) for test_set in context.test_sets]


def evaluate_student(recipe: Recipe, run: StudentRun, student: Student, test_set: TestSet) -> ScoredRun:
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
    return ScoredRun(ResultRow(**{
        "model": run.config.name,
        "role": "student",
        "kind": run.config.kind,
        "base_model": base_model_id(run.config.model),
        "data": run.data,
        "language": test_set.language,
        "train_size": run.train_size,
        # Per label and language, on average: the learning curve's x (a subset can be short of some cells).
        "train_examples_per_label": training.train_rows / (len(recipe.label_names) * len(training.languages)),
        "seed": training.seed,
        **scores,
        **speed(seconds, batch_sizes),
    }), predicted)


def _check_trained(recipe: Recipe, runs: Sequence[StudentRun]) -> None:
    """Every planned run is trained, with the recipe's current settings (else its scores would mislead)."""
    for run in runs:
        meta = read_meta(run.directory)
        what = f"student {run.config.name!r}" + (f" ({run.data} data)" if run.data != "synthetic" else "")
        if meta is None:
            raise HfsynthError(f"{what} is not trained yet ({run.directory}): run hfsynth train")
        expected = run_params(run).model_dump(mode="json")
        if (meta.kind, meta.model, meta.params) != (run.config.kind, run.config.model, expected):
            raise HfsynthError(
                f"{what} in {run.directory} was trained with other settings than the recipe's: "
                "run hfsynth train again"
            )


# --- entry point --------------------------------------------------------------------------------------------------


def write_predictions(path: Path, scored: Sequence[ScoredRun], test_sets: Sequence[TestSet]) -> None:
    """Every run's predictions, one JSON line per (model run, language), with the gold labels of its test set."""
    gold = {test_set.language: test_set.labels for test_set in test_sets}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for run in scored:
            row = run.row
            record = {field: getattr(row, field) for field in ("model", "role", "kind", "data", "language",
                                                               "train_size", "seed")}
            record |= {"gold": gold[row.language], "predicted": run.predicted}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _quality(recipe: Recipe, run_folder: RunFolder, session: _TeacherSession) -> QualityReport | None:
    """The dataset's quality report, recomputed when the texts or settings changed (the teacher judges fidelity when
    there is no reference data); its plot is copied beside the report."""
    dataset = run_folder.dataset
    if not recipe.quality.enabled or not dataset.stats.is_file():
        return None
    report = write_quality(recipe, dataset.root, lambda: teacher_classifier(recipe, session.get(), run_folder.cache),
                           session.model_id, embeddings=run_folder.embeddings)
    if report is not None and dataset.quality_plot.is_file():
        run_folder.eval.root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dataset.quality_plot, run_folder.eval.quality_plot)
    return report


def run_evaluation(recipe: Recipe, out_dir: Path, teacher: Teacher | None = None, engine: Engine | None = None,
                   on_progress: UnitsProgress | None = None) -> EvaluationResults:
    """Evaluate the teacher and every trained student run on the recipe's real test sets; write the eval folder.

    ``teacher``: an already loaded teacher to use; by default the recipe's is loaded, and only when some answer is
    not cached yet. ``engine``: where the teacher and the student evaluations run (:mod:`hfsynth.engines.base`;
    default: in this process). ``on_progress(done, total)``: student runs evaluated so far. Returns what the
    results file holds.
    """
    if not recipe.evaluation.sets:
        raise HfsynthError("the recipe has no evaluation.sets: there is no real test data to evaluate on")
    run_folder = RunFolder(out_dir)
    eval_dir = run_folder.eval
    runs = runs_to_evaluate(recipe, out_dir)
    _check_trained(recipe, runs)
    test_sets = load_test_sets(recipe)

    scored: list[ScoredRun] = []
    session = _TeacherSession(recipe, teacher, engine)
    spending = Spending(recipe.teacher, "the teacher's evaluation")
    try:
        with CallCache(run_folder.cache) as cache:
            for test_set in test_sets:
                scored.append(evaluate_teacher(recipe, test_set, session, cache, spending))
        quality = _quality(recipe, run_folder, session)
    finally:
        session.close()

    progress = on_progress or (lambda done, total: None)
    progress(0, len(runs))
    engine = engine or LOCAL
    folders = unit_folders(out_dir, engine)
    spec = UnitSpec("evaluations", recipe.execution.evaluation, recipe.execution.max_retries,
                    shared_folder=Path(out_dir) if folders.direct else None, resources_field="execution.evaluation",
                    describe=lambda index: f"evaluation of {runs[index].directory}")
    tables = embedding_tables(runs, [text for test_set in test_sets for text in test_set.texts], run_folder.embeddings)
    stream = engine.map(evaluate_run, runs, EvaluationContext(recipe, tuple(test_sets), folders, tables), spec)
    per_run = gather(stream, len(runs), lambda index, rows, done: progress(done, len(runs)))
    scored += [row for rows in per_run for row in rows]

    write_predictions(eval_dir.predictions, scored, test_sets)
    feedback = FeedbackReport.load_if_present(run_folder.dataset.feedback)
    reference = HumanReference.load_if_present(run_folder.human_reference) if recipe.reference_students else None
    results = build_results(recipe, scored, test_sets, session.model_id, quality, feedback, reference)
    results.teacher_tokens = spending.record()
    results.save(eval_dir.results)
    plot_teacher_vs_students(results, eval_dir.bars_plot)
    plot_learning_curve(results, eval_dir.curve_plot)
    if results.synthetic_vs_human:
        plot_synthetic_vs_human(results, eval_dir.human_plot)
    else:
        eval_dir.human_plot.unlink(missing_ok=True)  # from an earlier run with reference data
    if quality is None:
        eval_dir.quality_plot.unlink(missing_ok=True)
    if feedback is not None:
        plot_feedback_rounds(feedback, eval_dir.feedback_plot)
    else:
        eval_dir.feedback_plot.unlink(missing_ok=True)
    eval_dir.report.write_text(render_report(results, eval_dir), encoding="utf-8")
    return results
