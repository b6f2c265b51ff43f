"""The first run as a newcomer has it: a fresh clone, `make quickstart` (set-up included), its wall time, its peak
memory, what it printed, and its headline, repeated.

Each repeat clones this repository's committed HEAD into a temporary folder and runs the README's first command
there, `make quickstart`, in two timed parts: the set-up (`scripts/setup.sh` through make; packages come from pip's
cache when it has them) and the run (`hfsynth run recipes/quickstart.yaml`). Peak RSS is the largest resident set of
any one process of the repeat (`getrusage(RUSAGE_CHILDREN).ru_maxrss`, read in a fresh intermediate process per
repeat). The headline is read from the clone's `runs/quickstart/eval/results.json`: the teacher's macro-F1 and each
student's (the mean over its seeds with their spread, and its bootstrap interval); across repeats it must not move.

    python benchmarks/quickstart.py [--repeats 3]

Writes benchmarks/results/quickstart.json and quickstart.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hfsynth.evaluation.results import EvaluationResults
from hfsynth.runs.folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The project's goals for the first run (issue: the first run).
GOAL_MINUTES, GOAL_GIB = 10.0, 4.0

# Runs `make TARGET` in a clone and prints its wall time and the peak RSS of its processes, as JSON.
_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(["make", sys.argv[2]], cwd=sys.argv[1], capture_output=True, text=True)
seconds = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_kib": peak_kib, "returncode": done.returncode,
                  "stdout": done.stdout, "stderr": done.stderr}))
"""


def make(clone: Path, target: str) -> dict[str, Any]:
    # A newcomer's environment: nothing of this checkout on the import path.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    measured = subprocess.run([sys.executable, "-c", _MEASURE, str(clone), target], capture_output=True, text=True,
                              check=True, env=env)
    result = json.loads(measured.stdout)
    if result["returncode"] != 0:
        raise SystemExit(f"make {target} failed in {clone}:\n{result['stdout'][-3000:]}\n{result['stderr'][-3000:]}")
    return result


def library_noise(output: str) -> list[str]:
    """Lines of the run's output that come from a library, not from hfsynth: tagged ``[library]`` by hfsynth's log
    handler, Python warnings, or raw progress bars."""
    markers = ("[transformers]", "[setfit]", "[datasets]", "[huggingface_hub]", "[sentence_transformers]", "[trl]",
               "[peft]", "[accelerate]", "[torch]", "[warnings]", "Warning:", "it/s]", "s/it]")
    return [line for line in output.splitlines() if any(marker in line for marker in markers)]


def headline(results: EvaluationResults) -> dict[str, Any]:
    """The teacher's macro-F1 and each synthetic-data student's, with the spread over seeds, the interval and the
    verdicts."""
    teacher = results.teacher_by_language()
    return {
        f"{entry.role}:{entry.model}:{entry.language}": {
            "macro_f1": entry.macro_f1, "std_over_seeds": entry.macro_f1_std, "seeds": entry.repeats,
            "interval": entry.macro_f1_ci, "vs_teacher": entry.vs_teacher.statement if entry.vs_teacher else None,
            "human_data_macro_f1": entry.vs_human.against_macro_f1 if entry.vs_human else None,
            # Measured in the same run, on the same CPU and texts (varies with the machine's load: not a headline).
            "speed_vs_teacher": (entry.texts_per_s / teacher[entry.language].texts_per_s
                                 if entry.texts_per_s and teacher[entry.language].texts_per_s else None),
        }
        for entry in results.headline
    }


def one_repeat(workdir: Path) -> dict[str, Any]:
    clone = workdir / "hfsynth"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    setup = make(clone, ".venv/.hfsynth-setup")
    run = make(clone, "quickstart")
    results = EvaluationResults.load(RunFolder(clone / "runs" / "quickstart").eval.results)
    output = run["stdout"] + run["stderr"]
    return {
        "setup_seconds": setup["seconds"],
        "run_seconds": run["seconds"],
        "total_seconds": setup["seconds"] + run["seconds"],
        "peak_rss_gib": max(setup["peak_kib"], run["peak_kib"]) / 2**20,
        "run_peak_rss_gib": run["peak_kib"] / 2**20,
        "library_noise_lines": library_noise(output),
        "headline": headline(results),
        "printed": output,
    }


def scores(repeat: dict[str, Any]) -> dict[str, Any]:
    """A repeat's headline without the speeds (which follow the machine's load)."""
    return {model: {key: value for key, value in row.items() if key != "speed_vs_teacher"}
            for model, row in repeat["headline"].items()}


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    models = list(repeats[0]["headline"])
    return {
        "total_minutes": spread([r["total_seconds"] / 60 for r in repeats]),
        "setup_minutes": spread([r["setup_seconds"] / 60 for r in repeats]),
        "run_minutes": spread([r["run_seconds"] / 60 for r in repeats]),
        "peak_rss_gib": spread([r["peak_rss_gib"] for r in repeats]),
        "library_noise_lines": max(len(r["library_noise_lines"]) for r in repeats),
        "headline": {model: spread([r["headline"][model]["macro_f1"] for r in repeats]) for model in models},
        "headline_identical_across_repeats": all(scores(r) == scores(repeats[0]) for r in repeats),
    }


def markdown(summary: dict[str, Any], first: dict[str, Any], count: int) -> str:
    def span(values: dict[str, float], digits: int) -> str:
        return f"{values['mean']:.{digits}f} (min {values['min']:.{digits}f}, max {values['max']:.{digits}f})"

    lines = [f"`make quickstart` on a fresh clone, {count} repeats (mean, min and max over repeats):", "",
             "| measure | value | goal |", "|---|---|---|",
             f"| wall time, set-up + run (min) | {span(summary['total_minutes'], 1)} | <= {GOAL_MINUTES:.0f} |",
             f"| of which set-up (min) | {span(summary['setup_minutes'], 1)} | |",
             f"| of which `hfsynth run` (min) | {span(summary['run_minutes'], 1)} | |",
             f"| peak RSS of one process (GiB) | {span(summary['peak_rss_gib'], 2)} | <= {GOAL_GIB:.0f} |",
             f"| library warnings or raw bars printed (lines) | {summary['library_noise_lines']} | 0 |", "",
             "Headline (`runs/quickstart/eval/results.json`, the same in every repeat: "
             f"{'yes' if summary['headline_identical_across_repeats'] else 'NO'}):", "",
             "| model | macro-F1 | spread over seeds (std) | 95% interval | vs teacher | same student on human data "
             "| texts/s vs teacher |", "|---|---|---|---|---|---|---|"]
    for model, row in first["headline"].items():
        interval = row["interval"]
        cells = [
            " ".join(model.split(":")),
            f"{row['macro_f1']:.3f}",
            f"{row['std_over_seeds']:.3f} ({row['seeds']} seeds)" if row["seeds"] > 1 else "- (1 seed)",
            f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "-",
            row["vs_teacher"] or "-",
            f"{row['human_data_macro_f1']:.3f}" if row["human_data_macro_f1"] is not None else "-",
            f"{row['speed_vs_teacher']:.0f}x" if row["speed_vs_teacher"] else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = []
    for index in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="hfsynth-quickstart-") as workdir:
            started = time.perf_counter()
            repeats.append(one_repeat(Path(workdir)))
            print(f"repeat {index + 1}/{args.repeats}: {(time.perf_counter() - started) / 60:.1f} min, "
                  f"peak {repeats[-1]['peak_rss_gib']:.2f} GiB", flush=True)
    summary = summarize(repeats)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quickstart.json").write_text(json.dumps({
        "benchmark": "make quickstart on a fresh clone (set-up included)", "commit": commit,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "goals": {"minutes": GOAL_MINUTES, "peak_rss_gib": GOAL_GIB},
        "summary": summary, "repeats": repeats,
    }, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "quickstart.md").write_text(markdown(summary, repeats[0], len(repeats)), encoding="utf-8")
    print((RESULTS / "quickstart.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
