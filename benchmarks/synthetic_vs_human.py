"""How close does synthetic data get to human data? An embedded recipe end to end, then, per student and language,
the student trained on the teacher's synthetic data against the same student trained on as many real, human-labelled
examples per label (Pecher et al. 2026: "synthetic data reaches X% of human data").

Runs generate -> train -> evaluate in one process (resuming whatever an earlier run of the same --out finished) and
writes, per language: the synthetic and human macro-F1 with their bootstrap intervals, the ratio synthetic / human
with its interval, and the paired-bootstrap verdict, to ``benchmarks/results/synthetic_vs_human-<recipe>.{json,md,png}``.

The full embedded multilingual recipe takes long on 2 CPU cores; the options below run a reduced version of it, and
every reduction is written into the results and the table, so a reduced run never passes for the full one:

    python benchmarks/synthetic_vs_human.py [--recipe recipes/sib200-multilingual.yaml] [--out runs/bench-svh]
        [--languages en,sw] [--samples-per-label 4] [--max-samples 21] [--students setfit-e5]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from hfsynth import pipeline
from hfsynth.errors import HfsynthError
from hfsynth.evaluation.results import EvaluationResults
from hfsynth.formatting import interval_text
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import load_recipe
from hfsynth.runs.folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def reduce_recipe(
    recipe: Recipe,
    languages: list[str] | None = None,
    samples_per_label: int | None = None,
    max_samples: int | None = None,
    students: list[str] | None = None,
) -> tuple[Recipe, dict[str, Any]]:
    """The recipe cut down as asked, and what was cut (empty when nothing was)."""
    reductions: dict[str, Any] = {}
    update: dict[str, Any] = {}
    generation, evaluation = recipe.generation, recipe.evaluation
    if languages and languages != recipe.languages:
        unknown = set(languages) - set(recipe.languages)
        if unknown:
            raise HfsynthError(f"--languages: {sorted(unknown)} not in the recipe's {recipe.languages}")
        reductions["languages"] = {"recipe": recipe.languages, "run": languages}
        update["languages"] = languages
        generation = generation.model_copy(
            update={"seeds": [seed_set for seed_set in generation.seeds if seed_set.language in languages]})
        reference = evaluation.reference.model_copy(
            update={"sets": [seed_set for seed_set in evaluation.reference.sets if seed_set.language in languages]})
        evaluation = evaluation.model_copy(update={
            "sets": [seed_set for seed_set in evaluation.sets if seed_set.language in languages],
            "reference": reference})
    if samples_per_label and samples_per_label != generation.samples_per_label:
        reductions["samples_per_label"] = {"recipe": generation.samples_per_label, "run": samples_per_label}
        generation = generation.model_copy(update={"samples_per_label": samples_per_label})
    if max_samples and max_samples != evaluation.max_samples:
        reductions["test_texts_per_language"] = {"recipe": evaluation.max_samples, "run": max_samples}
        evaluation = evaluation.model_copy(update={"max_samples": max_samples})
    if students:
        names = [student.name for student in recipe.students]
        unknown = set(students) - set(names)
        if unknown:
            raise HfsynthError(f"--students: {sorted(unknown)} not in the recipe's {names}")
        if students != names:
            reductions["students"] = {"recipe": names, "run": students}
            update["students"] = [student for student in recipe.students if student.name in students]
            if evaluation.reference.students is not None:
                reference = evaluation.reference.model_copy(
                    update={"students": [name for name in evaluation.reference.students if name in students]})
                evaluation = evaluation.model_copy(update={"reference": reference})
    if not reductions:
        return recipe, {}
    reduced = recipe.model_copy(update={**update, "generation": generation, "evaluation": evaluation})
    reduced = Recipe.model_validate(reduced.model_dump())  # the cross-checks again, on the reduced recipe
    return reduced, reductions


def comparison_rows(results: EvaluationResults) -> list[dict[str, Any]]:
    """One row per student and language: synthetic vs human, and each against the teacher."""
    teachers = results.teacher_by_language()
    students = {(entry.model, entry.language): entry for entry in results.headline if entry.role == "student"}
    rows = []
    for row in results.synthetic_vs_human:
        comparison = row.comparison
        teacher = teachers.get(row.language)
        synthetic = students.get((row.student, row.language))
        rows.append({
            "student": row.student,
            "kind": row.kind,
            "language": row.language,
            "n": synthetic.n if synthetic else None,
            "examples_per_label": {"synthetic": row.synthetic_examples_per_label, "human": row.human_examples_per_label},
            "synthetic_macro_f1": row.synthetic_macro_f1,
            "synthetic_macro_f1_ci": row.synthetic_macro_f1_ci,
            "human_macro_f1": row.human_macro_f1,
            "human_macro_f1_ci": row.human_macro_f1_ci,
            "ratio": comparison.ratio,
            "ratio_ci": comparison.ratio_ci,
            "difference_ci": comparison.macro_f1_difference_ci,
            "verdict": comparison.statement,
            "teacher_macro_f1": teacher.macro_f1 if teacher else None,
            "teacher_macro_f1_ci": teacher.macro_f1_ci if teacher else None,
            "synthetic_vs_teacher": synthetic.vs_teacher.statement if synthetic and synthetic.vs_teacher else None,
        })
    return rows


def markdown(rows: list[dict[str, Any]], recipe_name: str, reductions: dict[str, Any], confidence: float) -> str:
    title = f"### `{recipe_name}`: synthetic vs human training data"
    lines = [title + (" (reduced run)" if reductions else ""), ""]
    if reductions:
        cut = "; ".join(f"{name.replace('_', ' ')} {value['run']} instead of {value['recipe']}"
                        for name, value in reductions.items())
        lines += [f"Reduced from the recipe to finish on 2 CPU cores: {cut}.", ""]
    lines += [f"Macro-F1 on real test data with {confidence:.0%} bootstrap intervals; the same student trained on the "
              "teacher's synthetic data and on as many real examples per label and language.", "",
              "| student | language | n | examples per label | synthetic data | human data | synthetic / human "
              "| verdict | synthetic vs teacher |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.0%} {interval_text(row['ratio_ci'], percent=True)}"
        lines.append(
            f"| {row['student']} | {row['language']} | {row['n']} | {row['examples_per_label']['synthetic']:.1f} | "
            f"{row['synthetic_macro_f1']:.3f} {interval_text(row['synthetic_macro_f1_ci'])} | "
            f"{row['human_macro_f1']:.3f} {interval_text(row['human_macro_f1_ci'])} | {ratio} | {row['verdict']} | "
            f"{row['synthetic_vs_teacher'] or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "sib200-multilingual.yaml"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-synthetic-vs-human"))
    parser.add_argument("--languages", help="comma-separated subset of the recipe's languages")
    parser.add_argument("--samples-per-label", type=int, help="synthetic samples per label and language")
    parser.add_argument("--max-samples", type=int, help="test texts per language (a stratified subset)")
    parser.add_argument("--students", help="comma-separated subset of the recipe's students")
    args = parser.parse_args()

    recipe, reductions = reduce_recipe(
        load_recipe(args.recipe),
        languages=args.languages.split(",") if args.languages else None,
        samples_per_label=args.samples_per_label,
        max_samples=args.max_samples,
        students=args.students.split(",") if args.students else None,
    )
    if not recipe.evaluation.reference.sets:
        raise SystemExit(f"{args.recipe}: the recipe names no evaluation.reference.sets (real training data)")
    out = Path(args.out)
    timings = {}
    for stage, run in (("generate", pipeline.generate), ("train", pipeline.train), ("evaluate", pipeline.evaluate)):
        started = time.perf_counter()
        result = run(recipe, out)
        timings[f"{stage}_s"] = round(time.perf_counter() - started, 1)
    results: EvaluationResults = result  # the last stage's
    rows = comparison_rows(results)
    confidence = results.bootstrap.confidence if results.bootstrap else 0.95

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"synthetic_vs_human-{recipe.name}" + ("-reduced" if reductions else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps({
        "recipe": recipe.name,
        "reductions": reductions,
        "teacher": results.teacher.to_json(),
        "bootstrap": results.bootstrap.to_json() if results.bootstrap else None,
        "machine": {"threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "timings_s (resumed stages are near zero)": timings,
        "rows": rows,
    }, indent=2))
    table = markdown(rows, recipe.name, reductions, confidence)
    (RESULTS / f"{stem}.md").write_text(table)
    plot = RunFolder(out).eval.human_plot
    if plot.is_file():
        shutil.copyfile(plot, RESULTS / f"{stem}.png")
    print(table)


if __name__ == "__main__":
    main()
