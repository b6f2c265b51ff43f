"""The evaluation report (``report.md`` in the eval folder), rendered from the results with the package template
``evaluation_report.md`` (in the top-level ``cards/`` folder, with the other templates)."""

from __future__ import annotations

import re
import statistics
from typing import Any

from hfsynth.evaluation.results import EvaluationResults, SummaryEntry
from hfsynth.evaluation.summary import mean_of_present
from hfsynth.formatting import format_number, format_percent, interval_text
from hfsynth.runs.folder import EvalFolder
from hfsynth.templates import render

REPORT_TEMPLATE = "evaluation_report.md"


def _number(value: float | None) -> str:
    return format_number(value, 1)


def _percent(value: float | None) -> str:
    return format_percent(value, 1, spaced=True)


def render_report(results: EvaluationResults, eval_folder: EvalFolder) -> str:
    """The report; plots are linked by name (the report sits beside them) and only when they exist."""
    languages = results.languages
    main = results.headline
    models = results.headline_models()

    def metric_lines(metric: str) -> list[dict[str, Any]]:
        lines = []
        for role, model, kind in models:
            entries = [results.headline_entry(role, model, language) for language in languages]
            present = [getattr(entry, metric) for entry in entries if entry]
            lines.append({
                "model": entries[0].display_name if entries[0] else model,
                "kind": kind,
                "cells": [entry.score_text(metric) if entry else "–" for entry in entries],
                "mean": f"{statistics.fmean(present):.3f}" if present else "–",
            })
        return lines

    def entries_of(role: str, model: str) -> list[SummaryEntry]:
        return [entry for entry in main if (entry.role, entry.model) == (role, model)]

    speed_lines = [{
        "model": entries_of(role, model)[0].display_name,
        "texts_per_s": _number(mean_of_present(entry.texts_per_s for entry in entries_of(role, model))),
        "latency_ms": _number(mean_of_present(entry.latency_ms for entry in entries_of(role, model))),
        "completion": _percent(mean_of_present(entry.completion_rate for entry in entries_of(role, model)))
        if role == "teacher" else "–",
    } for role, model, _ in models]
    teachers = results.teacher_by_language()
    teacher_lines = [{"language": language, "completion": _percent(entry.completion_rate),
                      "macro_f1": entry.score_text("macro_f1"), "accuracy": entry.score_text("accuracy")}
                     for language, entry in teachers.items()]
    verdicts = [{"model": entry.model, "language": entry.language, "student": entry.score_text("macro_f1"),
                 "teacher": teachers[entry.language].score_text("macro_f1"),
                 "difference": entry.vs_teacher.difference_text(), "statement": entry.vs_teacher.statement}
                for entry in main if entry.vs_teacher is not None]
    human = [{"student": row.student, "language": row.language,
              "synthetic": f"{row.synthetic_macro_f1:.3f} {interval_text(row.synthetic_macro_f1_ci)}",
              "human": f"{row.human_macro_f1:.3f} {interval_text(row.human_macro_f1_ci)}",
              "examples": f"{_number(row.synthetic_examples_per_label)} / {_number(row.human_examples_per_label)}",
              "ratio": row.comparison.ratio_text(), "difference": row.comparison.difference_text(),
              "statement": row.comparison.statement,
              "full": "-" if row.full_synthetic_macro_f1 is None else
              f"{row.full_synthetic_macro_f1:.3f} ({_number(row.full_synthetic_examples_per_label)} per label)"}
             for row in results.synthetic_vs_human]
    pool = results.reference_pool
    pool_lines = [{"language": language, "pool": pool.pool,
                   **{name: _number(value) for name, value in pool.per_label(language).items()}}
                  for language in languages if language in pool.cells] if pool is not None and human else []
    across = [{"model": model, "text": results.across_languages(model)}
              for role, model, _ in models if role == "student" and len(languages) > 1]
    curve = [
        {"model": entry.model, "data": entry.data or "synthetic", "language": entry.language,
         "repeats": entry.repeats, "size": "all" if entry.train_size is None else entry.train_size,
         "examples": _number(entry.train_examples_per_label),
         "macro_f1": entry.score_text("macro_f1"), "accuracy": entry.score_text("accuracy")}
        for entry in results.learning_curve
    ]
    shown = [*main, *results.human_reference]
    per_label = {
        language: [
            {"model": entry.display_name,
             "cells": [f"{entry.per_label_f1[label]:.3f}" for label in results.labels]}
            for entry in shown if entry.language == language
        ]
        for language in languages
    }
    confusion = [
        {"model": entry.display_name, "language": entry.language,
         "labels": entry.confusion_matrix.labels,
         "rows": list(zip(entry.confusion_matrix.labels, entry.confusion_matrix.matrix, strict=False))}
        for entry in shown
    ]
    # The report sits beside its plots in the eval folder: linked by name, and only those that were drawn.
    plots = {name: path.name if path.is_file() else None for name, path in (
        ("bars", eval_folder.bars_plot), ("curve", eval_folder.curve_plot), ("human", eval_folder.human_plot),
        ("quality", eval_folder.quality_plot), ("feedback", eval_folder.feedback_plot))}
    text = render(
        REPORT_TEMPLATE,
        recipe=results.recipe,
        teacher=results.teacher,
        bootstrap=results.bootstrap,
        languages=languages,
        labels=results.labels,
        macro_f1=metric_lines("macro_f1"),
        accuracy=metric_lines("accuracy"),
        teacher_lines=teacher_lines,
        verdicts=verdicts,
        human=human,
        pool_lines=pool_lines,
        across=[line for line in across if line["text"]],
        speed=speed_lines,
        curve=curve if any(entry.train_size is not None for entry in results.learning_curve) else [],
        quality=results.quality,
        feedback=results.feedback,
        quality_lines=results.quality.table_lines() if results.quality else [],
        per_label=per_label,
        confusion=confusion,
        plots=plots,
    )
    # Sections left out leave blank lines behind; Markdown needs one between blocks, never more.
    return re.sub(r"\n{3,}", "\n\n", text)
