"""Do the students beat their teacher? An embedded recipe end to end, then both sides on the same real test sets.

Runs generate -> train -> evaluate in one process (resuming whatever an earlier run of the same --out finished), and
reports side by side, per language: each student's macro-F1 against the teacher's, and each student's inference
throughput as a multiple of the teacher's (the same CPU, the same texts, measured in the same run).

    python benchmarks/students_vs_teacher.py [--recipe recipes/sib200-multilingual.yaml] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from hfsynth import pipeline
from hfsynth.recipe import load_recipe
from hfsynth.run_folder import RunFolder
from hfsynth.run_records import EvaluationResults

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def compare(results: EvaluationResults) -> list[dict]:
    """One row per student x language: its macro-F1 and speed next to the teacher's."""
    teacher = results.teacher_by_language()
    rows = []
    for entry in results.headline:
        if entry.role != "student" or entry.language not in teacher:
            continue
        baseline = teacher[entry.language]
        rows.append({
            "student": entry.model,
            "kind": entry.kind,
            "language": entry.language,
            "n": entry.n,
            "student_macro_f1": entry.macro_f1,
            "teacher_macro_f1": baseline.macro_f1,
            "beats_teacher": entry.macro_f1 > baseline.macro_f1,
            "student_texts_per_s": entry.texts_per_s,
            "teacher_texts_per_s": baseline.texts_per_s,
            "speedup": entry.texts_per_s / baseline.texts_per_s,
        })
    return rows


def markdown(rows: list[dict], recipe_name: str) -> str:
    lines = [f"### `{recipe_name}`: students vs teacher on real test data", "",
             "| student | kind | language | n | student macro-F1 | teacher macro-F1 | beats teacher | speed vs teacher |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['student']} | {row['kind']} | {row['language']} | {row['n']} | "
                     f"{row['student_macro_f1']:.3f} | {row['teacher_macro_f1']:.3f} | "
                     f"{'yes' if row['beats_teacher'] else 'no'} | {row['speedup']:.0f}x |")
    wins = sum(row["beats_teacher"] for row in rows)
    lines += ["", f"Students beat the teacher in {wins} of {len(rows)} student x language cells."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "sib200-multilingual.yaml"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "benchmark"))
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    out = Path(args.out)
    timings = {}
    started = time.perf_counter()
    pipeline.generate(recipe, out)
    timings["generate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.train(recipe, out)
    timings["train_s"] = time.perf_counter() - started
    started = time.perf_counter()
    results = pipeline.evaluate(recipe, out)
    timings["evaluate_s"] = time.perf_counter() - started

    rows = compare(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"students_vs_teacher-{recipe.name}"
    (RESULTS / f"{stem}.json").write_text(json.dumps({
        "recipe": recipe.name,
        "teacher": results.teacher.to_json(),
        "machine": {"threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "timings_s (resumed stages are near zero)": timings,
        "rows": rows,
    }, indent=2))
    (RESULTS / f"{stem}.md").write_text(markdown(rows, recipe.name))
    shutil.copyfile(RunFolder(out).eval.bars_plot, RESULTS / f"{stem}.png")
    print(markdown(rows, recipe.name))


if __name__ == "__main__":
    main()
