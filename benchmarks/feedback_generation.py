"""Error-driven generation (issue #19): at an equal number of teacher samples, does letting the student tell the
teacher what to write next (S3's errors, ProGen's demonstrations, or both) train better students than plain
generation?

Per recipe and seed, four runs of generate -> train -> evaluate, each in its own folder under ``--out``:

- ``plain``: ``samples_per_label x (1 + budget)`` per label and language in one open-loop pass;
- ``errors``, ``demonstrations``, ``both``: ``samples_per_label`` in the first pass, then ``--rounds`` feedback rounds
  spending ``budget x`` the first pass's samples (``generation.feedback``), steered by the head-only SetFit student.

The first pass of the feedback runs asks exactly the prompts of the plain run's first calls, so each run starts from a
copy of the recipe's call cache (content-addressed: a copy only saves paying twice for the same call, it changes no
answer). Only the recipe's SetFit students are trained (one seed each) and the quality report is off: both cost
minutes and are not what is compared. Every reduction is written into the results.

Writes ``benchmarks/results/feedback_generation.{json,md}``: every student's macro-F1 with its bootstrap interval,
the paired bootstrap interval of (feedback - plain) on the same test texts, the synthetic/human ratio, the teacher
samples asked and kept, the feedback learning curve, wall times and the load average.

    python benchmarks/feedback_generation.py [--recipes quickstart,sib200-multilingual] [--seeds 0,1,2]
        [--signals errors,demonstrations,both] [--rounds 3] [--budget 0.5] [--out runs/bench-feedback]

The default (both recipes, 3 seeds, 4 runs each: 24 runs) took 87 minutes on 2 shared CPU cores: about 10 minutes a
seed on the quickstart and 18 on sib200-multilingual, whose plain run generates 336 samples with Gemma-3-270M.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from hfsynth import pipeline
from hfsynth.cache import checkpoint
from hfsynth.evaluation.bootstrap import Predictions, paired_difference, resample_indices, resampled_scores
from hfsynth.evaluation.results import EvaluationResults
from hfsynth.recipe.schema import FeedbackConfig, Recipe
from hfsynth.recipes.files import load_recipe
from hfsynth.runs.folder import RunFolder
from hfsynth.runs.records import FeedbackReport, GenerationStats

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RECIPES = {"quickstart": "quickstart.yaml", "sib200-multilingual": "sib200-multilingual.yaml"}
#: The SetFit student trained per recipe: sib200's contrastive e5 student takes minutes per training on 2 cores.
STUDENTS = {"quickstart": ["setfit-minilm"], "sib200-multilingual": ["setfit-e5-frozen"]}


def variant(recipe: Recipe, students: list[str], seed: int, signal: str | None, rounds: int,
            budget: float) -> Recipe:
    """The recipe for one run: its SetFit students once each (reference runs too), no quality report, the
    generation seed, no top-up rounds (so that every run asks exactly its plan's samples, whatever curation drops),
    and either feedback on or the same number of teacher samples in one pass."""
    generation = recipe.generation
    cells = len(recipe.languages) * len(recipe.labels)
    extra = round(budget * generation.samples_per_label * cells)
    if extra % cells:
        raise SystemExit(f"--budget {budget}: {extra} extra samples do not split evenly over {cells} cells, so plain "
                         "generation could not ask for the same number: choose another budget")
    if signal is None:
        generation = generation.model_copy(update={"samples_per_label": generation.samples_per_label + extra // cells,
                                                   "seed": seed, "top_up_rounds": 0})
    else:
        feedback = FeedbackConfig(rounds=rounds, budget=budget, signal=signal, student=students[0])
        generation = generation.model_copy(update={"feedback": feedback, "seed": seed, "top_up_rounds": 0})
    kept = [student.model_copy(update={"repeats": 1}) for student in recipe.students if student.name in students]
    reference = recipe.evaluation.reference.model_copy(update={"students": students})
    evaluation = recipe.evaluation.model_copy(update={"reference": reference})
    quality = recipe.quality.model_copy(update={"enabled": False})
    updated = recipe.model_copy(update={"generation": generation, "students": kept, "evaluation": evaluation,
                                        "quality": quality})
    return Recipe.model_validate(updated.model_dump())  # the cross-checks again


def run_one(recipe: Recipe, out: Path, shared_cache: Path) -> dict[str, Any]:
    """generate -> train -> evaluate in ``out``, starting from (and adding to) the recipe's shared call cache."""
    cache = RunFolder(out).cache
    if shared_cache.is_file() and not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_cache, cache)
    load_before = os.getloadavg()
    timings = {}
    for stage, run in (("generate", pipeline.generate), ("train", pipeline.train), ("evaluate", pipeline.evaluate)):
        started = time.perf_counter()
        run(recipe, out)
        timings[stage] = round(time.perf_counter() - started, 1)
    checkpoint(cache)  # merged into one file before it is copied
    shutil.copyfile(cache, shared_cache)
    folder = RunFolder(out)
    stats = GenerationStats.load(folder.dataset.stats)
    results = EvaluationResults.load(folder.eval.results)
    feedback = FeedbackReport.load_if_present(folder.dataset.feedback)
    dropped = [json.loads(line) for line in folder.dataset.dropped.read_text(encoding="utf-8").splitlines()]
    students = [entry for entry in results.headline if entry.role == "student"]
    human = {(row.student, row.language): row for row in results.synthetic_vs_human}
    return {
        "seconds": timings,
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "teacher_samples_asked": stats.asked_samples,
        "teacher_calls": stats.calls,
        "kept_samples": stats.kept_samples,
        "students": [{
            "student": entry.model, "language": entry.language, "macro_f1": entry.macro_f1,
            "macro_f1_ci": entry.macro_f1_ci,
            "synthetic_over_human": human[(entry.model, entry.language)].comparison.ratio
            if (entry.model, entry.language) in human else None,
            "human_macro_f1": human[(entry.model, entry.language)].human_macro_f1
            if (entry.model, entry.language) in human else None,
        } for entry in students],
        "teacher_macro_f1": {entry.language: entry.macro_f1 for entry in results.headline if entry.role == "teacher"},
        "feedback": None if feedback is None else {
            "drop_reasons": dict(Counter(record["reason"] for record in dropped
                                         if record["prompt_id"].startswith("feedback"))),
            "learning_curve": feedback.learning_curve, "budget": feedback.budget,
            "asked_per_round": [round_.asked for round_ in feedback.rounds],
            "kept_per_round": [round_.kept for round_ in feedback.rounds]},
    }


def synthetic_predictions(out: Path) -> dict[tuple[str, str], tuple[list[str], list[str | None]]]:
    """(student, language) -> (gold, predicted) of each student trained on all the synthetic data."""
    found = {}
    for line in RunFolder(out).eval.predictions.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["role"] == "student" and (record.get("data") or "synthetic") == "synthetic" \
                and record.get("train_size") is None:
            found[(record["model"], record["language"])] = (record["gold"], record["predicted"])
    return found


def paired_against_plain(recipe: Recipe, plain: Path, other: Path) -> list[dict[str, Any]]:
    """Per student and language: the paired bootstrap interval of macro-F1 (feedback - plain), same test texts,
    the resamples the evaluation itself draws."""
    settings, base, rows = recipe.evaluation, synthetic_predictions(plain), []
    for key, (gold, predicted) in sorted(synthetic_predictions(other).items()):
        if key not in base or base[key][0] != gold:
            continue
        indices = resample_indices(len(gold), settings.bootstrap_resamples,
                                   seed=(settings.seed, zlib.crc32(key[1].encode())))
        first = resampled_scores(Predictions.of(gold, predicted, recipe.label_names), indices)
        second = resampled_scores(Predictions.of(gold, base[key][1], recipe.label_names), indices)
        difference = paired_difference(first, second, settings.confidence)["macro_f1"]
        rows.append({"student": key[0], "language": key[1], "difference_ci": difference["ci"],
                     "verdict": difference["verdict"]})
    return rows


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per recipe, configuration, student and language: the mean and spread over seeds."""
    groups: dict[tuple[str, str, str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for run in runs:
        for student in run["students"]:
            key = (run["recipe"], run["configuration"], student["student"], student["language"])
            groups.setdefault(key, []).append((run, student))
    summary = []
    for (recipe, configuration, student, language), members in groups.items():
        scores = [member["macro_f1"] for _, member in members]
        ratios = [member["synthetic_over_human"] for _, member in members if member["synthetic_over_human"]]
        paired = [row for run, _ in members for row in run.get("vs_plain", [])
                  if (row["student"], row["language"]) == (student, language)]
        summary.append({
            "recipe": recipe, "configuration": configuration, "student": student, "language": language,
            "seeds": len(members),
            "macro_f1_mean": statistics.fmean(scores),
            "macro_f1_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "synthetic_over_human_mean": statistics.fmean(ratios) if ratios else None,
            "teacher_samples_asked_mean": statistics.fmean(run["teacher_samples_asked"] for run, _ in members),
            "vs_plain_verdicts": [row["verdict"] for row in paired],
            "vs_plain_difference_cis": [row["difference_ci"] for row in paired],
        })
    return summary


def markdown(document: dict[str, Any]) -> str:
    students = ", ".join(f"{recipe}: {', '.join(names)}" for recipe, names in document["students"].items())
    lines = ["### Error-driven generation vs plain generation at equal teacher samples", "",
             (f"Seeds {document['seeds']}; {document['rounds']} feedback rounds, budget {document['budget']} of the "
              f"first pass; students: {students} (one training each). Macro-F1 on real test data, mean ± std over "
              "seeds; 'vs plain' is the paired bootstrap verdict of each seed."), "",
             ("| recipe | configuration | student | language | teacher samples asked | macro-F1 | synthetic / human "
              "| vs plain (per seed) |"), "|---|---|---|---|---|---|---|---|"]
    for row in document["summary"]:
        ratio = "-" if row["synthetic_over_human_mean"] is None else f"{row['synthetic_over_human_mean']:.0%}"
        verdicts = ", ".join(row["vs_plain_verdicts"]) or "-"
        lines.append(f"| {row['recipe']} | {row['configuration']} | {row['student']} | {row['language']} | "
                     f"{row['teacher_samples_asked_mean']:.0f} | {row['macro_f1_mean']:.3f} ± "
                     f"{row['macro_f1_std']:.3f} | {ratio} | {verdicts} |")
    curves = [run for run in document["runs"] if run["feedback"]]
    if curves:
        lines += ["", "Steering student's validation macro-F1 per round (0: the first pass):", ""]
        for run in curves:
            curve = " → ".join(f"{value:.3f}" for value in run["feedback"]["learning_curve"])
            lines.append(f"- {run['recipe']} {run['configuration']} seed {run['seed']}: {curve}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated, of: " + ", ".join(RECIPES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--signals", default="errors,demonstrations,both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-feedback"))
    parser.add_argument("--results", default=str(RESULTS / "feedback_generation.json"))
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    signals = args.signals.split(",")
    out = Path(args.out)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    document: dict[str, Any] = {
        "benchmark": "plain vs error-driven generation at an equal number of teacher samples",
        "commit": commit, "seeds": seeds, "rounds": args.rounds, "budget": args.budget,
        "recipes": args.recipes.split(","), "signals": signals,
        "students": {name: STUDENTS[name] for name in args.recipes.split(",")},
        "reductions": "each recipe's SetFit students only, one training each (repeats 1); quality report off; "
                      "no top-up rounds (every run asks the teacher exactly its plan's samples)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": [],
    }
    started = time.perf_counter()
    for name in args.recipes.split(","):
        recipe = load_recipe(ROOT / "recipes" / RECIPES[name])
        shared_cache = out / name / "teacher_calls.sqlite"
        shared_cache.parent.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            plain_dir = out / name / f"seed{seed}" / "plain"
            for configuration in ["plain", *signals]:
                signal = None if configuration == "plain" else configuration
                folder = out / name / f"seed{seed}" / configuration
                run = run_one(variant(recipe, STUDENTS[name], seed, signal, args.rounds, args.budget), folder,
                              shared_cache)
                run |= {"recipe": name, "seed": seed, "configuration": configuration}
                if signal is not None:
                    run["vs_plain"] = paired_against_plain(recipe, plain_dir, folder)
                document["runs"].append(run)
                print(f"{name} seed {seed} {configuration}: " + ", ".join(
                    f"{s['student']}/{s['language']} {s['macro_f1']:.3f}" for s in run["students"])
                    + f" ({run['teacher_samples_asked']} samples asked)", flush=True)
                document["summary"] = summarise(document["runs"])
                document["total_minutes"] = round((time.perf_counter() - started) / 60, 1)
                Path(args.results).write_text(json.dumps(document, indent=2))  # after every run: a partial result
                Path(args.results).with_suffix(".md").write_text(markdown(document))
    print(markdown(document))


if __name__ == "__main__":
    main()
