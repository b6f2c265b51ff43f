"""Teacher vs students: does a small model trained on an LLM's synthetic data beat the LLM as a classifier?

The Gradio app of the comparison Space (``hfsynth space serve|deploy``). The manifest beside a staged Space's entry
file names the task, the teacher, each student (a folder in the Space or a Hub id), the evaluation results and example
texts from the real test set. Models load on first use, once; a model that fails shows its error in its own column
while the others keep working.
"""

from __future__ import annotations

import csv
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from hfsynth.evaluation.results import EvaluationResults, SummaryEntry
from hfsynth.formatting import interval_text
from hfsynth.languages import language_name
from hfsynth.prompting import classification_prompt
from hfsynth.recipe.schema import Recipe
from hfsynth.runs.folder import SpaceFolder
from hfsynth.space.manifest import TEACHER_NAME, SpaceManifest, load_manifest
from hfsynth.students.base import Student
from hfsynth.teachers import load_teacher

#: Longer texts are cut (with a notice): the teacher's prompt grows with the text, and so does its latency.
MAX_CHARS = 2000
#: Rows per batch request: every row goes through every model, the teacher included, on shared CPUs.
MAX_BATCH_ROWS = 50
MAX_ERROR_CHARS = 300
#: Batch result files kept in the app's own temporary folder (Gradio serves its own copies).
KEPT_DOWNLOADS = 4
SUMMARY_COLUMNS = ["model", "role", "kind", "label", "confidence", "latency_ms", "agrees_with_teacher", "error"]
# The scalar fields of results.json's "summary" (hfsynth.evaluation), intervals and verdicts as text; per-label scores
# and matrices stay in report.md.
RESULT_COLUMNS = list(SummaryEntry.TABLE_FIELDS)
# Label backgrounds: a student that agrees with the teacher, one that does not.
AGREE_COLOR = "#bbf7d0"
DISAGREE_COLOR = "#fecaca"

#: texts, languages -> one probability per label for each text (``None``: the model gave no label for it).
Predictor = Callable[[Sequence[str], Sequence[str]], list[dict[str, float] | None]]


@dataclass(frozen=True)
class ModelSpec:
    name: str  # "teacher" or the student's name: the key of its column
    role: str  # "teacher" | "student"
    kind: str  # the teacher's backend or the student's kind
    source: str  # teacher: its model name; student: an absolute folder or a Hub id
    on_hub: bool = False  # a student published on the Hub, downloaded on first use

    @property
    def title(self) -> str:
        return f"Teacher · {self.source}" if self.role == "teacher" else f"Student · {self.name} ({self.kind})"


@dataclass(frozen=True)
class Outcome:
    """One model's answers for a list of texts, or why it has none."""
    spec: ModelSpec
    probabilities: list[dict[str, float] | None]
    seconds: float  # prediction time, without loading
    load_seconds: float | None  # set on the call that loaded the model
    error: str | None = None

    def label(self, index: int) -> str | None:
        scores = self.probabilities[index] if self.probabilities else None
        return max(scores, key=scores.__getitem__) if scores else None


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    message = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return message[:MAX_ERROR_CHARS]


def _load_predictor(spec: ModelSpec, recipe: Recipe) -> Predictor:
    # Heavy imports happen here, on first use: the page is up before any model library is imported.
    if spec.role == "teacher":

        teacher = load_teacher(recipe.teacher)

        def teacher_predict(texts: Sequence[str], languages: Sequence[str]) -> list[dict[str, float] | None]:
            prompts = [classification_prompt(recipe, text, language) for text, language in zip(texts, languages)]
            return [scores.probabilities for scores in teacher.classify(prompts, recipe.label_names)]

        return teacher_predict


    if spec.on_hub:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec.source))
    else:
        folder = Path(spec.source)
    student = Student.load(folder)

    def student_predict(texts: Sequence[str], languages: Sequence[str]) -> list[dict[str, float] | None]:
        rows = student.predict_proba(list(texts), list(languages))
        return [{label: float(p) for label, p in zip(student.labels, row)} for row in rows]

    return student_predict


class ModelPool:
    """Loads each model on first use, once, and remembers a failure: a broken model costs one attempt, not one per
    request, and never takes the others down."""

    def __init__(self, recipe: Recipe, specs: Sequence[ModelSpec]) -> None:
        self.recipe = recipe
        self.specs = list(specs)
        self._loaded: dict[str, Predictor | BaseException] = {}
        self._lock = threading.Lock()

    def _get(self, spec: ModelSpec) -> tuple[Predictor, float | None]:
        with self._lock:
            if spec.name not in self._loaded:
                started = time.perf_counter()
                try:
                    self._loaded[spec.name] = _load_predictor(spec, self.recipe)
                except Exception as error:  # any library's failure: it belongs in this model's column
                    self._loaded[spec.name] = error
                load_seconds: float | None = time.perf_counter() - started
            else:
                load_seconds = None
            loaded = self._loaded[spec.name]
        if isinstance(loaded, BaseException):
            raise RuntimeError(f"could not load: {_describe(loaded)}")
        return loaded, load_seconds

    def predict(self, texts: Sequence[str], languages: Sequence[str]) -> list[Outcome]:
        outcomes = []
        for spec in self.specs:
            load_seconds = None
            try:
                predictor, load_seconds = self._get(spec)
                started = time.perf_counter()
                probabilities = predictor(texts, languages)
                outcomes.append(Outcome(spec, probabilities, time.perf_counter() - started, load_seconds))
            except Exception as error:
                message = str(error) if isinstance(error, RuntimeError) else _describe(error)
                outcomes.append(Outcome(spec, [], 0.0, load_seconds, error=message))
        return outcomes


# --- the app -------------------------------------------------------------------------------------------------------


class CompareApp:
    """The app's behaviour, apart from its layout (so that it can be tested without a browser)."""
    def __init__(self, manifest_path: Path, work_dir: Path | None = None) -> None:
        self.root = Path(manifest_path).resolve().parent
        self.manifest: SpaceManifest = load_manifest(manifest_path)
        self.recipe = self.manifest.task_recipe()
        teacher = ModelSpec(TEACHER_NAME, "teacher", self.recipe.teacher.backend, self.recipe.teacher.model)
        students = [
            ModelSpec(source.name, "student", source.kind, source.hub_id, on_hub=True) if source.hub_id
            else ModelSpec(source.name, "student", source.kind, str((self.root / str(source.path)).resolve()))
            for source in self.manifest.students
        ]
        self.pool = ModelPool(self.recipe, [teacher, *students])
        # Batch results are written here for download; Gradio copies each into its own cache when it is returned,
        # so only the last few are kept, and the folder goes when the process ends.
        # ``work_dir``: a folder whoever serves the app deletes (hfsynth.space.session), else one of its own.
        self._downloads = tempfile.TemporaryDirectory(prefix="hfsynth-space-", dir=work_dir,
                                                      ignore_cleanup_errors=work_dir is not None)
        self._written: list[Path] = []

    @property
    def specs(self) -> list[ModelSpec]:
        return self.pool.specs

    @property
    def languages(self) -> list[str]:
        return self.recipe.languages

    def _language(self, language: str | None) -> str:
        """The language a text is in: one of the Space's (the only one when none is picked)."""
        if language in self.languages:
            return language  # type: ignore[return-value]
        if not language and len(self.languages) == 1:
            return self.languages[0]
        if not language:
            raise gr.Error("Pick the language of the text.", print_exception=False)
        raise gr.Error(f"This Space covers {', '.join(self.languages)}, not {language!r}.", print_exception=False)

    def _truncate(self, text: str) -> tuple[str, str]:
        if len(text) <= MAX_CHARS:
            return text, ""
        return text[:MAX_CHARS], f"The text was {len(text):,} characters long: the models saw the first {MAX_CHARS:,}."

    def classify(self, text: str, language: str) -> list[Any]:
        """Outputs: per model a Label and a status line, then the summary table and a notice."""
        text = (text or "").strip()
        if not text:
            raise gr.Error("Type a text to classify (or pick an example below).", print_exception=False)
        language = self._language(language)
        text, notice = self._truncate(text)
        if notice:
            gr.Warning(notice)
        outcomes = self.pool.predict([text], [language])
        teacher_label = outcomes[0].label(0)
        outputs: list[Any] = []
        rows = []
        for outcome in outcomes:
            label = outcome.label(0)
            agrees = None if outcome.spec.role == "teacher" or not (label and teacher_label) else label == teacher_label
            color = None if agrees is None else (AGREE_COLOR if agrees else DISAGREE_COLOR)
            probabilities = outcome.probabilities[0] if outcome.probabilities else None
            outputs.append(gr.Label(value=probabilities or None, color=color))
            outputs.append(self._status(outcome, label, agrees, teacher_label))
            confidence = round(probabilities[label], 4) if probabilities and label else None
            rows.append([outcome.spec.name, outcome.spec.role, outcome.spec.kind, label, confidence,
                         round(outcome.seconds * 1000, 1) if outcome.error is None else None,
                         "" if agrees is None else ("yes" if agrees else "no"), outcome.error or ""])
        outputs.append(pd.DataFrame(rows, columns=SUMMARY_COLUMNS))
        outputs.append(notice)
        return outputs

    @staticmethod
    def _status(outcome: Outcome, label: str | None, agrees: bool | None, teacher_label: str | None) -> str:
        if outcome.error:
            return f"**Error**: {outcome.error}"
        if label is None:
            return "**No label**: the model's answer matched none of the labels."
        confidence = outcome.probabilities[0][label]  # type: ignore[index]
        parts = [f"**{label}**", f"{confidence:.0%}", f"{outcome.seconds * 1000:.0f} ms"]
        if outcome.load_seconds is not None:
            parts.append(f"loaded in {outcome.load_seconds:.1f} s")
        if outcome.spec.role == "teacher":
            parts.append("the reference")
        elif agrees is True:
            parts.append("agrees with the teacher")
        elif agrees is False:
            parts.append(f"**disagrees** with the teacher ({teacher_label})")
        return " · ".join(parts)

    def _read_batch(
        self, lines: str, csv_path: str | None, language: str
    ) -> tuple[list[tuple[str, str, str]], list[str]]:
        """Rows (text, language, gold label or "") from the text box and the CSV file, and notices about them."""
        texts = [line.strip() for line in (lines or "").splitlines() if line.strip()]
        rows = [(text, self._language(language), "") for text in texts]
        notices = []
        if csv_path:
            try:
                with open(csv_path, encoding="utf-8-sig", newline="") as handle:
                    reader = csv.DictReader(handle)
                    columns = reader.fieldnames or []
                    if "text" not in columns:
                        raise gr.Error(f"The CSV file needs a 'text' column (it has: {', '.join(columns)}).",
                                       print_exception=False)
                    skipped: dict[str, int] = {}
                    for record in reader:
                        row_language = (record.get("language") or "").strip() or self._language(language)
                        if row_language not in self.languages:
                            skipped[row_language] = skipped.get(row_language, 0) + 1
                        elif (record["text"] or "").strip():
                            rows.append((record["text"].strip(), row_language, (record.get("label") or "").strip()))
            except (UnicodeDecodeError, csv.Error) as error:
                raise gr.Error(f"Cannot read the CSV file ({_describe(error)}): save it as UTF-8 CSV.",
                               print_exception=False) from None
            if skipped:
                unknown = ", ".join(f"{code!r} ({count})" for code, count in sorted(skipped.items()))
                notices.append(f"Skipped rows in languages this Space does not cover: {unknown}.")
        if len(rows) > MAX_BATCH_ROWS:
            notices.append(f"Only the first {MAX_BATCH_ROWS} of {len(rows)} rows were classified.")
            rows = rows[:MAX_BATCH_ROWS]
        truncated = sum(len(text) > MAX_CHARS for text, _, _ in rows)
        if truncated:
            notices.append(f"{truncated} text(s) longer than {MAX_CHARS:,} characters were cut to that length.")
        return [(text[:MAX_CHARS], row_language, gold) for text, row_language, gold in rows], notices

    def classify_batch(self, lines: str, csv_path: str | None, language: str) -> tuple[pd.DataFrame, str, str]:
        """Outputs: a table (one row per text, a label and a confidence column per model), its CSV file, notices."""
        rows, notices = self._read_batch(lines, csv_path, language)
        if not rows:
            raise gr.Error("Give one text per line, or a CSV file with a 'text' column.", print_exception=False)
        texts, languages, golds = (list(column) for column in zip(*rows))
        table: dict[str, list[Any]] = {"text": texts, "language": languages}
        if any(golds):
            table["gold"] = golds
        for outcome in self.pool.predict(texts, languages):
            name = outcome.spec.name
            if outcome.error:
                notices.append(f"`{name}`: {outcome.error}")
            labels = [outcome.label(i) if not outcome.error else None for i in range(len(texts))]
            table[name] = labels
            table[f"{name} confidence"] = [
                round(outcome.probabilities[i][label], 4) if label else None for i, label in enumerate(labels)
            ]
            scored = [(label, gold) for label, gold in zip(labels, golds) if gold]
            if scored and not outcome.error:
                accuracy = sum(label == gold for label, gold in scored) / len(scored)
                notices.append(f"`{name}`: accuracy {accuracy:.2f} on the {len(scored)} row(s) with a gold label.")
        frame = pd.DataFrame(table)
        with tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="predictions-", delete=False,
                                         dir=self._downloads.name, encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False)
        self._written.append(Path(handle.name))
        while len(self._written) > KEPT_DOWNLOADS:  # older ones are in Gradio's cache by now
            self._written.pop(0).unlink(missing_ok=True)
        return frame, handle.name, "\n\n".join(notices)

    def results(self) -> list[Any]:
        """Outputs: the evaluation table, a summary of the verdicts and the data's quality, then each plot."""
        plots = [Image.open(self.root / path) for path in self.manifest.plots]
        path = self.root / self.manifest.results if self.manifest.results else None
        if path is None or not path.is_file():
            return [pd.DataFrame(columns=RESULT_COLUMNS), "This run has no evaluation results yet.", *plots]
        results = EvaluationResults.load(path)
        frame = pd.DataFrame([_result_row(entry) for entry in results.summary], columns=RESULT_COLUMNS).round(4)
        return [frame, _results_summary(results), *plots]


def _result_row(entry: SummaryEntry) -> dict[str, Any]:
    row = {column: getattr(entry, column, None) for column in RESULT_COLUMNS}
    row |= {"macro_f1_ci": interval_text(entry.macro_f1_ci), "accuracy_ci": interval_text(entry.accuracy_ci),
            "vs_teacher": entry.vs_teacher.statement if entry.vs_teacher else None,
            "vs_human": entry.vs_human.statement if entry.vs_human else None}
    return row


def _results_summary(results: EvaluationResults) -> str:
    """Per language, each student against the teacher (and against human data) as the paired bootstrap has it, then
    the synthetic data's quality."""
    lines = []
    teachers = results.teacher_by_language()
    human = {(row.student, row.language): row for row in results.synthetic_vs_human}
    for entry in results.headline:
        teacher = teachers.get(entry.language)
        if entry.role != "student" or entry.vs_teacher is None or teacher is None:
            continue
        line = (f"- **{entry.language}**: `{entry.model}` (macro-F1 {entry.score_text('macro_f1')}) "
                f"**{entry.vs_teacher.statement}** (macro-F1 {teacher.score_text('macro_f1')}, completion rate "
                f"{teacher.completion_rate or 0:.0%}; difference {entry.vs_teacher.difference_text()}).")
        pair = human.get((entry.model, entry.language))
        if pair is not None:
            line += f" Against {pair.equal_size_text()}. Human data pool {results.pool_text(entry.language)}."
        lines.append(line)
    lines += [f"- **Across languages**, `{model}`: {results.across_languages(model)}."
              for role, model, _ in results.headline_models() if role == "student" and len(results.languages) > 1]
    quality = results.quality
    if quality is not None:
        lines.append("")
        lines.append(f"**Synthetic data quality** (synthetic / real; {quality.embedding_model} embeddings):")
        for line in quality.table_lines():
            lines.append(f"- **{line['language']}**: distinct-2 {line['distinct_2']}, pairwise distance "
                         f"{line['pairwise']}, coverage of the test set {line['coverage']} "
                         f"(within {line['distance']}), label fidelity {line['fidelity']}.")
        overlap, chatter = quality.test_overlap, quality.teacher_chatter
        lines.append(f"- Test-set overlap: {overlap.dropped} dropped, {overlap.kept} left; "
                     f"teacher chatter: {chatter.dropped} dropped, {chatter.kept} left.")
    feedback = results.feedback
    if feedback is not None:
        curve = " → ".join(f"{value:.3f}" for value in feedback.learning_curve)
        lines += ["", (f"**Feedback rounds** ({feedback.signal}, {feedback.budget} extra teacher samples after "
                       f"{feedback.first_pass_asked}): validation macro-F1 of `{feedback.student}` per round (0: the "
                       f"first pass), on {feedback.validation_texts} real validation texts: {curve}.")]
    return "\n".join(lines)


def build_demo(manifest_path: Path | str, work_dir: Path | None = None) -> gr.Blocks:
    """The Space's Blocks for a manifest. Nothing is loaded until the first request needs it. Batch downloads go
    into ``work_dir`` when given."""
    app = CompareApp(Path(manifest_path), work_dir)
    recipe = app.recipe
    language_choices = [(f"{language_name(code)} ({code})", code) for code in app.languages]
    label_list = ", ".join(f"`{name}`" for name in recipe.label_names)

    with gr.Blocks(title=app.manifest.title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {app.manifest.title}\n{recipe.task.description} Labels: {label_list}.")
        with gr.Tab("Compare", id="compare"):
            with gr.Row():
                text = gr.Textbox(label="Text", lines=3, max_lines=12, placeholder="Type a text to classify",
                                  elem_id="input-text", scale=4)
                with gr.Column(scale=1):
                    # allow_custom_value: an unknown language is refused by the app with one message, instead of by
                    # Gradio's check, which also prints a server-side traceback for every such request.
                    language = gr.Dropdown(language_choices, value=app.languages[0], label="Language",
                                           elem_id="input-language", allow_custom_value=True)
                    gold = gr.Textbox(label="Gold label (test set)", interactive=False, elem_id="gold-label")
            submit = gr.Button("Classify", variant="primary", elem_id="classify")
            notice = gr.Markdown(elem_id="notice")
            model_outputs: list[gr.components.Component] = []
            with gr.Row(equal_height=False):
                for index, spec in enumerate(app.specs):
                    with gr.Column(min_width=220, elem_id=f"model-{index}"):
                        model_outputs.append(gr.Label(label=spec.title, show_heading=True, elem_id=f"label-{index}"))
                        model_outputs.append(gr.Markdown(elem_id=f"status-{index}"))
            summary = gr.Dataframe(headers=SUMMARY_COLUMNS, label="All models", interactive=False,
                                   elem_id="summary")
            if app.manifest.examples:
                gr.Examples(
                    [[example.text, example.language, example.label] for example in app.manifest.examples],
                    inputs=[text, language, gold],
                    label="Examples from the real test set (with their gold labels)",
                    cache_examples=False,
                    elem_id="examples",
                )
            # A typed text has no gold label: clear the one an example left behind.
            text.input(lambda: "", outputs=gold, queue=False, show_progress="hidden", api_visibility="private")
            gr.on([submit.click, text.submit], app.classify, inputs=[text, language],
                  outputs=[*model_outputs, summary, notice], api_name="classify", concurrency_id="models")

        with gr.Tab("Batch", id="batch"):
            gr.Markdown(f"One text per line, or a CSV file with a `text` column and optional `language` and `label` "
                        f"(gold) columns. At most {MAX_BATCH_ROWS} rows.")
            with gr.Row():
                batch_text = gr.Textbox(label="Texts, one per line", lines=6, elem_id="batch-text", scale=3)
                with gr.Column(scale=1):
                    batch_file = gr.File(label="CSV file", file_types=[".csv"], elem_id="batch-file")
                    batch_language = gr.Dropdown(language_choices, value=app.languages[0],
                                                 label="Language (rows without one)", allow_custom_value=True)
            batch_submit = gr.Button("Classify all", variant="primary", elem_id="classify-batch")
            batch_notice = gr.Markdown()
            batch_table = gr.Dataframe(label="Predictions", interactive=False, wrap=True, elem_id="batch-table")
            batch_download = gr.File(label="Predictions (CSV)", interactive=False)
            batch_submit.click(app.classify_batch, inputs=[batch_text, batch_file, batch_language],
                               outputs=[batch_table, batch_download, batch_notice], api_name="classify_batch",
                               concurrency_id="models")

        with gr.Tab("Evaluation", id="evaluation"):
            gr.Markdown("Macro-F1 and accuracy on the real test sets (`eval/results.json` of the run), with their "
                        "bootstrap confidence intervals; a student *beats the teacher* only where the interval of the "
                        "difference excludes zero. Then the synthetic data's quality report.")
            results_summary = gr.Markdown()
            results_table = gr.Dataframe(label="Teacher and students", interactive=False, elem_id="results-table")
            plot_images = [gr.Image(label=Path(path).stem.replace("_", " "), type="pil", interactive=False,
                                    format="png") for path in app.manifest.plots]
        # Read at page load, so a re-evaluated run shows its new numbers without a restart.
        demo.load(app.results, outputs=[results_table, results_summary, *plot_images], api_name="results")
    return demo


def main(space_dir: Path) -> None:
    """Serve the Space staged in ``space_dir``: what its ``app.py`` runs on the Hub."""
    manifest_file = SpaceFolder(space_dir).manifest
    if not manifest_file.is_file():
        raise SystemExit(f"{manifest_file.name} is missing: make this Space with `hfsynth space deploy RECIPE --out RUN`")
    build_demo(manifest_file).launch()
