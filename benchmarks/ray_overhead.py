"""The Ray engine's overhead: ``hfsynth run recipes/quickstart.yaml`` on the local engine against ``--ray`` on a
one-node Ray instance it starts itself, the same recipe (default resources), on this machine.

Each round runs both commands as a user would (a fresh process and a fresh run folder each, nothing cached but the
embedded models), alternating which goes first; the Ray side includes starting and stopping its Ray instance. Both
must give the same dataset (byte for byte) and the same scores: checked every round.

    python benchmarks/ray_overhead.py [--rounds 2] [--out benchmarks/results/ray_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "quickstart.yaml"
SCORES = ("model", "role", "language", "train_size", "seed", "n", "macro_f1", "accuracy", "per_label",
          "confusion_matrix")


def run(out: Path, ray: bool) -> float:
    command = [sys.executable, "-m", "hfsynth.cli", "run", str(RECIPE), "--out", str(out)]
    if ray:
        command += ["--ray", "local"]  # always a new one-node instance, never a cluster left running
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - started


def dataset_files(out: Path) -> dict[str, bytes]:
    folder = out / "dataset"
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.name.startswith("cache-")}


def scores(out: Path) -> list[dict]:
    rows = json.loads((out / "eval" / "results.json").read_text())["rows"]
    return [{key: row.get(key) for key in SCORES} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ray_overhead.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    times: dict[str, list[float]] = {"local": [], "ray": []}
    same_dataset, same_scores = [], []
    try:
        for round_index in range(args.rounds):
            order = ("local", "ray") if round_index % 2 == 0 else ("ray", "local")
            for name in order:
                times[name].append(run(work / f"{name}-{round_index}", ray=name == "ray"))
                print(f"round {round_index + 1} {name}: {times[name][-1]:.1f} s", flush=True)
            local, ray = work / f"local-{round_index}", work / f"ray-{round_index}"
            same_dataset.append(dataset_files(local) == dataset_files(ray))
            same_scores.append(scores(local) == scores(ray))
            shutil.rmtree(local)
            shutil.rmtree(ray)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratios = [ray / local for local, ray in zip(times["local"], times["ray"], strict=True)]
    report = {
        "benchmark": "hfsynth run recipes/quickstart.yaml: local engine vs --ray on a one-node Ray instance",
        "local_seconds": [round(value, 1) for value in times["local"]],
        "ray_seconds": [round(value, 1) for value in times["ray"]],
        "ray_over_local": {"per_round": [round(value, 2) for value in ratios],
                           "median": round(statistics.median(ratios), 2), "goal": "<= 1.2"},
        "same_dataset_every_round": all(same_dataset),
        "same_scores_every_round": all(same_scores),
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()[0],
                    "python": platform.python_version(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
