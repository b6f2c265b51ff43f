"""The evaluation's plots, as PNG files (matplotlib ``Figure``: no pyplot, no GUI backend, no global state).

Error bars are the bootstrap confidence intervals of the results (over the test texts, of the mean over seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hfsynth.evaluation.results import EvaluationResults, SummaryEntry
from hfsynth.runs.records import FeedbackReport


def _error_bars(entries: Sequence[SummaryEntry | None]) -> np.ndarray:
    """``(2, n)`` distances from each macro-F1 down and up to its interval's ends (0 where there is none)."""
    below, above = [], []
    for entry in entries:
        if entry is None or entry.macro_f1_ci is None:
            below.append(0.0)
            above.append(0.0)
        else:
            below.append(max(entry.macro_f1 - entry.macro_f1_ci[0], 0.0))
            above.append(max(entry.macro_f1_ci[1] - entry.macro_f1, 0.0))
    return np.array([below, above])


def _confidence_label(results: EvaluationResults) -> str:
    return f"{results.bootstrap.confidence:.0%} bootstrap interval" if results.bootstrap else "interval"


def plot_teacher_vs_students(results: EvaluationResults, path: Path) -> None:
    """Grouped bars: one group per language, one bar per model (students on all their synthetic data), macro-F1
    with its confidence interval."""
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
            yerr=_error_bars(entries),
            capsize=3,
            label=next(entry for entry in entries if entry is not None).display_name,
            hatch="//" if role == "teacher" else None,
        )
    axes.set_xticks(positions, languages)
    axes.set_ylim(0, 1)
    axes.set_ylabel(f"macro-F1 on real test data ({_confidence_label(results)})", fontsize="small")
    axes.set_title(f"{results.recipe}: teacher vs students")
    axes.grid(axis="y", alpha=0.3)
    figure.legend(fontsize="small", loc="lower center", ncol=min(3, len(models)))
    figure.tight_layout(rect=(0, 0.06 * (1 + (len(models) - 1) // 3), 1, 1))
    figure.savefig(path, dpi=120)


def _at_its_size(entry: SummaryEntry) -> bool:
    """A training size the human data could fill: a pool smaller than a size gives a run of the pool's size, which
    the all-data point already shows (the curves then share the sizes both have)."""
    return entry.train_size is None or (entry.train_examples_per_label or 0) >= entry.train_size


def plot_learning_curve(results: EvaluationResults, path: Path) -> None:
    """Macro-F1 against training examples per label, one panel per language: each student on synthetic data (solid)
    and, with a reference, on real data (dashed, same colour); the teacher as a black dashed line."""
    languages = results.languages
    columns = min(3, len(languages))
    rows = -(-len(languages) // columns)
    figure = Figure(figsize=(4.5 * columns, 3.5 * rows))
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True)
    students = list(dict.fromkeys(entry.model for entry in results.learning_curve))
    colours = {model: f"C{index % 10}" for index, model in enumerate(students)}
    for axis, language in zip(axes.flat, languages, strict=False):
        for teacher in (entry for entry in results.headline if entry.role == "teacher" and entry.language == language):
            axis.axhline(teacher.macro_f1, linestyle="--", color="black", label=teacher.display_name)
        curve = [entry for entry in results.learning_curve if entry.language == language]
        for model in students:
            for data, style, marker in (("synthetic", "-", "o"), ("human", "--", "s")):
                points = sorted((entry for entry in curve
                                 if entry.model == model and (entry.data or "synthetic") == data
                                 and (data == "synthetic" or _at_its_size(entry))),
                                key=lambda entry: entry.train_examples_per_label or 0.0)
                if not points:
                    continue
                axis.errorbar([point.train_examples_per_label for point in points],
                              [point.macro_f1 for point in points], yerr=_error_bars(points), marker=marker,
                              capsize=3, linestyle=style, color=colours[model],
                              markerfacecolor="white" if data == "human" else colours[model],
                              label=f"{model} ({data} data)")
        axis.set_title(language)
        axis.set_xlabel("training examples per label")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(languages):]:
        axis.set_visible(False)
    axes[0][0].set_ylabel("macro-F1 on real test data")
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, fontsize="small", loc="lower center", ncol=min(3, len(handles)))
    figure.tight_layout(rect=(0, 0.06 * (1 + len(handles) // 3) if handles else 0, 1, 1))
    figure.savefig(path, dpi=120)


def plot_synthetic_vs_human(results: EvaluationResults, path: Path) -> None:
    """Per language, each reference student trained on synthetic data next to the same student trained on as much
    real data (hatched), with confidence intervals; the ratio synthetic/human above each pair."""
    languages = results.languages
    students = list(dict.fromkeys(row.student for row in results.synthetic_vs_human))
    by_key = {(row.student, row.language): row for row in results.synthetic_vs_human}
    figure = Figure(figsize=(max(7.0, 1.1 * len(languages) * len(students) + 2), 4.8))
    axes = figure.subplots()
    pair_width = 0.8 / len(students)
    positions = np.arange(len(languages))
    for index, student in enumerate(students):
        centre = positions + (index - (len(students) - 1) / 2) * pair_width
        rows = [by_key.get((student, language)) for language in languages]
        for offset, side, hatch in ((-0.25, "synthetic", None), (0.25, "human", "//")):
            values = [getattr(row, f"{side}_macro_f1") if row else 0.0 for row in rows]
            intervals = [getattr(row, f"{side}_macro_f1_ci") if row else [0.0, 0.0] for row in rows]
            error = np.array([[max(value - low, 0.0) for value, (low, _) in zip(values, intervals, strict=True)],
                              [max(high - value, 0.0) for value, (_, high) in zip(values, intervals, strict=True)]])
            axes.bar(centre + offset * pair_width, values, pair_width / 2, yerr=error, capsize=3, hatch=hatch,
                     color=f"C{index % 10}", alpha=1.0 if side == "synthetic" else 0.55,
                     label=f"{student} ({side} data)")
        for x, row in zip(centre, rows, strict=True):
            if row is not None and row.comparison.ratio is not None:
                top = max(row.synthetic_macro_f1_ci[1], row.human_macro_f1_ci[1])
                axes.text(x, top + 0.02, f"{row.comparison.ratio:.0%}", ha="center", fontsize="small")
    axes.set_xticks(positions, languages)
    axes.set_ylim(0, 1.1)
    axes.set_ylabel(f"macro-F1 on real test data ({_confidence_label(results)})", fontsize="small")
    axes.set_title(f"{results.recipe}: synthetic vs human training data\n(above each pair: synthetic / human)",
                   fontsize="medium")
    axes.grid(axis="y", alpha=0.3)
    figure.legend(fontsize="small", loc="lower center", ncol=min(4, 2 * len(students)))
    figure.tight_layout(rect=(0, 0.06 * (1 + (2 * len(students) - 1) // 4), 1, 1))
    figure.savefig(path, dpi=120)


def plot_feedback_rounds(feedback: FeedbackReport, path: Path) -> None:
    """The feedback learning curve: the steering student's macro-F1 on the real validation texts after the first
    pass (round 0) and after each feedback round's samples, with the samples asked so far on a second axis."""
    rounds = list(range(len(feedback.learning_curve)))
    asked = np.cumsum([feedback.first_pass_asked, *(round.asked for round in feedback.rounds)])
    figure = Figure(figsize=(6.0, 3.8))
    axis = figure.subplots()
    axis.plot(rounds, feedback.learning_curve, marker="o", color="C0", label="validation macro-F1")
    axis.set_xlabel("feedback round (0: the first pass)")
    axis.set_ylabel(f"macro-F1 of {feedback.student} (head-only)")
    axis.set_ylim(0, 1)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    samples = axis.twinx()
    samples.bar(rounds, asked, alpha=0.15, color="C1", label="teacher samples asked so far")
    samples.set_ylabel("teacher samples asked so far")
    axis.set_zorder(samples.get_zorder() + 1)
    axis.patch.set_visible(False)
    axis.set_title(f"Error-driven generation ({feedback.signal}): {feedback.validation_texts} validation texts")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
