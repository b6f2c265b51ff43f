"""The paper's topic recipe at 1x, 3x and 10x its samples per label, every stage: generation with curation, the
quality report, a head-only SetFit student (multilingual-e5-small, ``body_training: none``) with its human-data
reference runs, and the evaluation of teacher and students; by the real ``hfsynth run``.

The teacher is the load teacher (:mod:`benchmarks.load_teacher`, a real OpenAI-compatible server on loopback that
answers at once with spliced real SIB-200 training sentences), so what is measured is hfsynth's own work. The human
reference trains on the whole SIB-200 training splits (``pool: all``, as Pecher et al. trained their human-data
students: at 10x the teacher's few-shot prompts show it every training sentence, so the strict pool would be empty;
every scale uses the same pool so that the series is one configuration). Each run is a
fresh ``hfsynth run`` process in a fresh folder; each stage's wall time, peak memory and texts embedded are the run's
own records (``run_stats.json``), and the run's embedding store (``cache/embeddings.sqlite``) says how many distinct
texts there were: when the stages computed exactly that many, each (model, text) was embedded once.

Growth exponent per stage: log(time at the largest scale / time at the smallest) / log(scale ratio), from the
medians (1.0 is linear).

    python benchmarks/paper_scale_run.py [--rounds 2] [--scales 1 3 10] [--largest-rounds 1] [--append]

Writes benchmarks/results/paper_scale_run.json and paper_scale_run.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: benchmarks.load_teacher and hfsynth from this checkout

from benchmarks.load_teacher import SIB200_FOLDERS, load_teacher, topic_recipe  # noqa: E402
from hfsynth.recipes.files import load_recipe  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RESULTS_FILE = RESULTS / "paper_scale_run.json"
PAPER_SAMPLES_PER_LABEL = 200
STAGES = ("generate", "quality report", "train", "evaluate")
STUDENT = {"name": "setfit-head", "kind": "setfit", "model": "multilingual-e5-small",
           "params": {"body_training": "none"}}


def human_reference() -> dict[str, Any]:
    """The whole SIB-200 training splits as the human-data reference of the head-only student."""
    return {"sets": [{"language": code, "path": str(ROOT / "data" / "sib200" / folder / "train.jsonl")}
                     for code, folder in SIB200_FOLDERS.items()],
            "students": [STUDENT["name"]], "pool": "all"}


def run_once(folder: Path, scale: int) -> dict[str, Any]:
    path = topic_recipe(folder, PAPER_SAMPLES_PER_LABEL * scale, students=[STUDENT])
    data = yaml.safe_load(path.read_text())
    data["evaluation"]["reference"] = human_reference()
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    with load_teacher(load_recipe(path)) as teacher:
        data["teacher"]["base_url"] = teacher.base_url
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        out = folder / "run"
        load = os.getloadavg()[0]
        started = time.perf_counter()
        finished = subprocess.run([sys.executable, "-m", "hfsynth.cli", "run", str(path), "--out", str(out)],
                                  capture_output=True, text=True, check=False,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - started
        if finished.returncode != 0:
            raise SystemExit(f"scale {scale}: hfsynth run failed:\n{finished.stderr[-3000:]}")
    stages = json.loads((out / "run_stats.json").read_text())["stages"]
    generation = json.loads((out / "dataset" / "generation.json").read_text())
    with sqlite3.connect(out / "cache" / "embeddings.sqlite") as store:
        distinct = store.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    equal_size = (out / "student_runs" / STUDENT["name"]).glob("synthetic-at-human-size*")
    return {
        "scale": scale, "samples_per_label": PAPER_SAMPLES_PER_LABEL * scale, "load_before": load,
        "wall_seconds": wall, "kept": generation["kept_samples"], "calls": generation["calls"],
        "distinct_texts_embedded": distinct, "equal_size_runs": len(list(equal_size)),
        "stages": {name: {"seconds": stage["seconds"], "peak_rss_mib": stage["peak_rss_mib"],
                          "peak_scope": stage["peak_scope"],
                          "embedded": (stage.get("embedded_texts") or {}).get("computed", 0),
                          "reused": (stage.get("embedded_texts") or {}).get("reused", 0)}
                   for name, stage in stages.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--largest-rounds", type=int, default=None,
                        help="rounds at the largest scale (default: --rounds); it takes as long as the others together")
    parser.add_argument("--append", action="store_true",
                        help="add these rounds to the runs already in the results file (a long series in parts)")
    arguments = parser.parse_args()
    largest = max(arguments.scales)
    runs: list[dict[str, Any]] = json.loads(RESULTS_FILE.read_text())["runs"] if arguments.append else []
    first = 1 + max((run["round"] for run in runs), default=-1)
    table = ""
    for round_index in range(first, first + arguments.rounds):
        for scale in arguments.scales:
            if (scale == largest and arguments.largest_rounds is not None
                    and round_index - first >= arguments.largest_rounds):
                continue
            with tempfile.TemporaryDirectory(prefix="paper-scale-run-") as folder:
                run = run_once(Path(folder), scale) | {"round": round_index}
            print(json.dumps(run), flush=True)
            runs.append(run)
            table = write(runs)
    print(table)


def write(runs: list[dict[str, Any]]) -> str:
    """The results so far (after every run: a long benchmark stopped early keeps what it measured); their table."""
    summary = summarize(runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial = RESULTS_FILE.with_name(f".{RESULTS_FILE.name}.partial")  # whole or not at all: --append reads it
    partial.write_text(json.dumps(
        {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "runs": runs,
         "summary": summary}, indent=2))
    os.replace(partial, RESULTS_FILE)
    table = markdown(summary, runs)
    (RESULTS / "paper_scale_run.md").write_text(table)
    return table


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scale measured, each stage's spread over the runs; each stage's growth exponent between the extremes."""
    scales = sorted({run["scale"] for run in runs})
    rows: dict[str, Any] = {}
    for scale in scales:
        mine = [run for run in runs if run["scale"] == scale]
        rows[str(scale)] = {
            "kept": _spread([run["kept"] for run in mine]),
            "distinct_texts_embedded": _spread([run["distinct_texts_embedded"] for run in mine]),
            "embedded_once": all(sum(stage["embedded"] for stage in run["stages"].values())
                                 == run["distinct_texts_embedded"] for run in mine),
            "stages": {name: {key: _spread([run["stages"][name][key] for run in mine])
                              for key in ("seconds", "peak_rss_mib", "embedded", "reused")}
                       for name in STAGES if all(name in run["stages"] for run in mine)},
        }
    low, high = str(min(scales)), str(max(scales))
    factor = max(scales) / min(scales)
    exponents = {name: {key: math.log(rows[high]["stages"][name][key]["median"]
                                      / rows[low]["stages"][name][key]["median"]) / math.log(factor)
                        for key in ("seconds", "peak_rss_mib")}
                 for name in rows[low]["stages"] if name in rows[high]["stages"]} if factor > 1 else {}
    return {"scales": rows, "growth_exponent": exponents}


def markdown(summary: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    loads = [run["load_before"] for run in runs]
    lines = ["### The paper's topic recipe at scale: every stage",
             "",
             "pecher2026-topic (11 languages x 7 labels) on the local SIB-200 copies, the load teacher, a head-only "
             "SetFit student (multilingual-e5-small) with its human-data reference; a fresh `hfsynth run` per run, "
             f"load average before runs {min(loads):.1f}-{max(loads):.1f}. Median [min-max] over the runs at each "
             "scale (n).",
             "",
             "| scale (n) | stage | seconds | peak RSS (MiB) | texts embedded | reused |",
             "|---|---|---:|---:|---:|---:|"]
    for scale, row in summary["scales"].items():
        for name, stage in row["stages"].items():
            seconds, peak = stage["seconds"], stage["peak_rss_mib"]
            lines.append(f"| {scale}x ({seconds['runs']}) | {name} | {seconds['median']:.1f} "
                         f"[{seconds['min']:.1f}-{seconds['max']:.1f}] | {peak['median']:,.0f} "
                         f"[{peak['min']:,.0f}-{peak['max']:,.0f}] | {stage['embedded']['median']:,.0f} | "
                         f"{stage['reused']['median']:,.0f} |")
    lines += ["", "| scale | kept samples | distinct texts in the store | each embedded once |", "|---|---:|---:|---|"]
    for scale, row in summary["scales"].items():
        lines.append(f"| {scale}x | {row['kept']['median']:,.0f} | {row['distinct_texts_embedded']['median']:,.0f} | "
                     f"{'yes' if row['embedded_once'] else 'no'} |")
    if summary["growth_exponent"]:
        parts = [f"{name} {values['seconds']:.2f} (memory {values['peak_rss_mib']:.2f})"
                 for name, values in summary["growth_exponent"].items()]
        lines += ["", "Growth exponent of time per stage from the smallest to the largest scale (1.0: linear): "
                  + "; ".join(parts) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
