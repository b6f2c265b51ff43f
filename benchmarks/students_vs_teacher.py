"""Do the students beat their teacher, and what does the whole recipe cost? An embedded recipe end to end on this
machine, then both sides on the same real test sets.

Runs generate -> train -> evaluate in one process, in an empty run folder each repeat (the embedded models' converted weights
stay cached in ~/.cache/hfsynth, as after a first run), and reports:
- per stage, the wall time and the peak resident memory (the run folder's ``run_stats.json``);
- per student and language, its macro-F1 (mean over seeds, bootstrap interval) against the teacher's, the paired
  verdict, and its inference throughput as a multiple of the teacher's (same CPU, same texts, same run; the teacher
  on its fastest path, shared-prefix label scoring).

    python benchmarks/students_vs_teacher.py [--recipe recipes/sib200-multilingual.yaml] [--repeats 2]

Goals (performance issue): at most 30 minutes and 4 GiB for the multilingual recipe on 2 cores, with students
beating the teacher in every language.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
from pathlib import Path

import torch

from hfsynth import pipeline
from hfsynth.evaluation.results import EvaluationResults
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import load_recipe
from hfsynth.runs.folder import RunFolder
from hfsynth.runs.records import RunStats

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOAL_MINUTES, GOAL_GIB = 30.0, 4.0


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
            "student_macro_f1": entry.score_text("macro_f1"),
            "teacher_macro_f1": baseline.score_text("macro_f1"),
            "higher_than_teacher": entry.macro_f1 > baseline.macro_f1,
            "vs_teacher": entry.vs_teacher.statement if entry.vs_teacher else None,
            "speedup": (entry.texts_per_s / baseline.texts_per_s
                        if entry.texts_per_s and baseline.texts_per_s else None),
        })
    return rows


def markdown(rows: list[dict], repeats: list[dict], recipe_name: str) -> str:
    def span(values: list[float], digits: int) -> str:
        mean = sum(values) / len(values)
        return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    stages = list(repeats[0]["stages"])
    lines = [f"### `{recipe_name}` end to end, {len(repeats)} repeats: mean (min-max)", "",
             "| stage | minutes | peak RSS (GiB) |", "|---|---|---|"]
    lines += [f"| {name} | {span([r['stages'][name]['seconds'] / 60 for r in repeats], 1)} | "
              f"{span([r['stages'][name]['peak_rss_mib'] / 1024 for r in repeats], 2)} |" for name in stages]
    lines += [f"| all | {span([r['minutes'] for r in repeats], 1)} (goal <= {GOAL_MINUTES:.0f}) | "
              f"{span([r['peak_rss_gib'] for r in repeats], 2)} (goal <= {GOAL_GIB:.0f}) |", "",
              "Scores, the same in every repeat: "
              f"{'yes' if all(r['rows'] == repeats[0]['rows'] for r in repeats) else 'NO'} (speeds: the first repeat's).",
              "",
              "| student | kind | language | n | student macro-F1 | teacher macro-F1 | verdict | speed vs teacher |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        speed = f"{row['speedup']:.0f}x" if row["speedup"] else "-"
        lines.append(f"| {row['student']} | {row['kind']} | {row['language']} | {row['n']} | "
                     f"{row['student_macro_f1']} | {row['teacher_macro_f1']} | {row['vs_teacher'] or '-'} | {speed} |")
    languages = sorted({row["language"] for row in rows})
    beaten = [language for language in languages
              if any(row["higher_than_teacher"] for row in rows if row["language"] == language)]
    clearly = [language for language in languages
               if any(row["vs_teacher"] == "beats the teacher" for row in rows if row["language"] == language)]
    lines += ["", f"A student scores above the teacher in {len(beaten)} of {len(languages)} languages "
                  f"({', '.join(beaten) or 'none'}); clearly (paired bootstrap) in {len(clearly)} "
                  f"({', '.join(clearly) or 'none'})."]
    return "\n".join(lines) + "\n"


def one_repeat(recipe: Recipe) -> tuple[dict, EvaluationResults]:
    with tempfile.TemporaryDirectory(prefix="hfsynth-bench-") as folder:
        out = Path(folder) / "run"
        pipeline.generate(recipe, out)
        pipeline.train(recipe, out)
        results = pipeline.evaluate(recipe, out)
        stats = RunStats.load(RunFolder(out).stats).to_json()["stages"]
        shutil.copyfile(RunFolder(out).eval.bars_plot, RESULTS / f"students_vs_teacher-{recipe.name}.png")
    rows = compare(results)
    return {
        "stages": stats,
        "minutes": sum(stage["seconds"] for stage in stats.values()) / 60,
        "peak_rss_gib": max(stage["peak_rss_mib"] for stage in stats.values()) / 1024,
        # The scores (speeds vary with the machine's load).
        "rows": [{key: value for key, value in row.items() if key != "speedup"} for row in rows],
    }, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "sib200-multilingual.yaml"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    RESULTS.mkdir(parents=True, exist_ok=True)
    repeats, first = [], None
    for index in range(args.repeats):
        repeat, results = one_repeat(recipe)
        repeats.append(repeat)
        first = first or results
        print(f"repeat {index + 1}/{args.repeats}: {repeat['minutes']:.1f} min, peak {repeat['peak_rss_gib']:.2f} GiB",
              flush=True)
    rows = compare(first)
    stem = f"students_vs_teacher-{recipe.name}"
    (RESULTS / f"{stem}.json").write_text(json.dumps({
        "recipe": recipe.name,
        "teacher": first.teacher.to_json(),
        "machine": {"threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "goals": {"minutes": GOAL_MINUTES, "peak_rss_gib": GOAL_GIB},
        "rows": rows,
        "repeats": repeats,
    }, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(rows, repeats, recipe.name))
    print(markdown(rows, repeats, recipe.name))


if __name__ == "__main__":
    main()
