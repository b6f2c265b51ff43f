"""The paper's topic recipe at 1x, 3x and 10x its samples per label: the generate stage (teacher calls, parsing,
curation with its top-up rounds, the dataset written) end to end, by the real ``hfsynth generate``.

The teacher is the load teacher (:mod:`benchmarks.load_teacher`: a real OpenAI-compatible server on loopback
answering at once with spliced real SIB-200 sentences), so what is measured is hfsynth's own work, with the remote
teacher's client and the call cache in it. The quality report is off (it embeds every text: the embedding cache of
issue #28 is not built yet), and no student trains. Each run is a fresh ``hfsynth generate`` process in a fresh
folder; its wall time and peak memory are the stage's own record (``run_stats.json``). Scales take turns within a
round; the load average is recorded before each run. Growth exponent: log(time at 10x / time at 1x) / log(10),
from the medians (1.0 is linear).

    python benchmarks/paper_scale.py [--rounds 2] [--scales 1 3 10]

Writes benchmarks/results/paper_scale.json and paper_scale.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: benchmarks.load_teacher and hfsynth from this checkout

from benchmarks.load_teacher import load_teacher, topic_recipe  # noqa: E402
from hfsynth.recipes.files import load_recipe  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PAPER_SAMPLES_PER_LABEL = 200


def run_once(folder: Path, scale: int) -> dict[str, Any]:
    changes = {"students": [], "quality": {"enabled": False}}
    path = topic_recipe(folder, PAPER_SAMPLES_PER_LABEL * scale, **changes)
    data = yaml.safe_load(path.read_text())
    with load_teacher(load_recipe(path)) as teacher:
        data["teacher"]["base_url"] = teacher.base_url
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        out = folder / "run"
        load = os.getloadavg()[0]
        finished = subprocess.run([sys.executable, "-m", "hfsynth.cli", "generate", str(path), "--out", str(out)],
                                  capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                                       "PYTHONPATH": str(ROOT)}, check=False)
        if finished.returncode != 0:
            raise SystemExit(f"scale {scale}: hfsynth generate failed:\n{finished.stderr[-2000:]}")
    stage = json.loads((out / "run_stats.json").read_text())["stages"]["generate"]
    stats = json.loads((out / "dataset" / "generation.json").read_text())
    return {"scale": scale, "samples_per_label": PAPER_SAMPLES_PER_LABEL * scale, "seconds": stage["seconds"],
            "peak_rss_mib": stage["peak_rss_mib"], "calls": stats["calls"], "parsed": stats["parsed_samples"],
            "kept": stats["kept_samples"], "rounds": stats["rounds"], "load_before": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 3, 10])
    arguments = parser.parse_args()
    runs = []
    for round_index in range(arguments.rounds):
        for scale in arguments.scales:
            with tempfile.TemporaryDirectory(prefix="paper-scale-") as folder:
                run = run_once(Path(folder), scale) | {"round": round_index}
            print(json.dumps(run), flush=True)
            runs.append(run)
    summary = summarize(runs, arguments.scales)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "paper_scale.json").write_text(json.dumps(
        {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "runs": runs,
         "summary": summary}, indent=2))
    (RESULTS / "paper_scale.md").write_text(markdown(summary, runs))
    print(markdown(summary, runs))


def summarize(runs: list[dict[str, Any]], scales: list[int]) -> dict[str, Any]:
    rows = {}
    for scale in scales:
        mine = [run for run in runs if run["scale"] == scale]
        rows[str(scale)] = {key: {"median": statistics.median(run[key] for run in mine),
                                  "min": min(run[key] for run in mine), "max": max(run[key] for run in mine)}
                            for key in ("seconds", "peak_rss_mib", "calls", "parsed", "kept")}
    low, high = str(min(scales)), str(max(scales))
    factor = max(scales) / min(scales)
    exponents = {key: math.log(rows[high][key]["median"] / rows[low][key]["median"]) / math.log(factor)
                 for key in ("seconds", "peak_rss_mib")} if factor > 1 else {}
    return {"scales": rows, "growth_exponent": exponents}


def markdown(summary: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    loads = [run["load_before"] for run in runs]
    lines = ["### The paper's topic recipe at scale: the generate stage",
             "",
             "pecher2026-topic (11 languages x 7 labels) on the local SIB-200 copies, the load teacher, quality "
             f"report off, no students; fresh `hfsynth generate` per run, {len(runs) // len(summary['scales'])} "
             f"rounds, load average before runs {min(loads):.1f}-{max(loads):.1f}. Median [min-max].",
             "",
             "| scale | samples per label | calls | parsed | kept | seconds | peak RSS (MiB) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for scale, row in summary["scales"].items():
        cell = {key: row[key] for key in row}
        lines.append(f"| {scale}x | {PAPER_SAMPLES_PER_LABEL * int(scale):,} | {cell['calls']['median']:,.0f} | "
                     f"{cell['parsed']['median']:,.0f} | {cell['kept']['median']:,.0f} | "
                     f"{cell['seconds']['median']:.1f} [{cell['seconds']['min']:.1f}-{cell['seconds']['max']:.1f}] | "
                     f"{cell['peak_rss_mib']['median']:,.0f} [{cell['peak_rss_mib']['min']:,.0f}-"
                     f"{cell['peak_rss_mib']['max']:,.0f}] |")
    exponents = summary["growth_exponent"]
    if exponents:
        lines += ["", f"Growth exponent from the smallest to the largest scale: time {exponents['seconds']:.2f}, "
                      f"peak memory {exponents['peak_rss_mib']:.2f} (1.0: linear)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
