"""The Ray engine's overhead at equal parallelism, and its parallel speed-up apart, on a student sweep.

The sweep is the quickstart's SetFit student (all-MiniLM-L6-v2) trained on all the data and on 4 and 8 examples per
label, each with 2 seeds: 6 runs. Its data is real SIB-200 English training sentences (12 per label, the size of the
quickstart's synthetic set) in the synthetic dataset's schema, so no teacher is needed. Every run uses one torch
thread (``HFSYNTH_TRAINING_THREADS``' default), whatever the engine.

- local: the 6 runs one after the other in this process;
- ray, one at a time: the same 6 runs as Ray tasks on a loopback cluster, each asking for a resource only one worker
  node has, so that they too run one after the other: ``ray one at a time / local`` is Ray's overhead;
- ray, two at a time: the same on the cluster's two one-CPU worker nodes: ``one at a time / two at a time`` is the
  parallel speed-up on these 2 cores (other jobs on the machine take it away first).

The cluster (a head with no CPU and the two workers) is up before the clock starts, as a real cluster is. Settings take
turns within each round, their order reversed every other round, each in a fresh folder; the load average is recorded
before each setting.

    python benchmarks/ray_overhead.py [--rounds 3] [--out benchmarks/results/ray_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import datasets
import torch
import yaml

from hfsynth.engines.base import LOCAL
from hfsynth.generation.samples import features
from hfsynth.recipes.files import load_recipe
from hfsynth.training import train_students

ROOT = Path(__file__).resolve().parents[1]
SIB200_TRAIN = ROOT / "data" / "sib200" / "eng_Latn" / "train.jsonl"
PER_LABEL = 12


def sweep_recipe(folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    data["name"] = "ray-sweep"
    data["generation"]["seeds"][0]["path"] = str(SIB200_TRAIN)
    data["evaluation"]["sets"][0]["path"] = str(ROOT / "data/sib200/eng_Latn/test.jsonl")
    data["students"] = [data["students"][0] | {"train_sizes": [4, 8], "repeats": 2}]  # the SetFit student alone
    data["evaluation"].pop("reference", None)
    data["execution"] = {"students": {"num_cpus": 1, "threads": 1}}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def real_sentences(labels: list[str]) -> datasets.DatasetDict:
    columns: dict[str, list] = defaultdict(list)
    taken: dict[str, int] = defaultdict(int)
    for row in map(json.loads, SIB200_TRAIN.read_text(encoding="utf-8").splitlines()):
        if row["label"] in labels and taken[row["label"]] < PER_LABEL:
            taken[row["label"]] += 1
            for column, value in (("text", row["text"]), ("label", row["label"]), ("language", "en"),
                                  ("teacher", "none (real sentences)"), ("strategy", "few-shot"),
                                  ("prompt_id", f"en/{row['label']}/{taken[row['label']]}")):
                columns[column].append(value)
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(dict(columns), features=features(labels))})


def spread(values: list[float]) -> dict[str, Any]:
    return {"per_round": [round(value, 2) for value in values], "median": round(statistics.median(values), 2),
            "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ray_overhead.json"))
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    from hfsynth.engines.ray_engine import RayEngine

    work = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    recipe = load_recipe(sweep_recipe(work))
    one_at_a_time = recipe.execution.students.model_copy(update={"resources": {"one_at_a_time": 1}})
    recipes = {"local": recipe, "ray, two at a time": recipe,
               "ray, one at a time": recipe.model_copy(update={"execution": recipe.execution.model_copy(
                   update={"students": one_at_a_time})})}
    dataset = real_sentences(recipe.label_names)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    cluster.add_node(num_cpus=1, resources={"one_at_a_time": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    cluster_seconds = time.perf_counter() - started
    times: dict[str, list[float]] = {name: [] for name in recipes}
    load: dict[str, list[float]] = {name: [] for name in recipes}
    runs = 0
    try:
        with RayEngine(cluster.address) as engine:
            for round_index in range(args.rounds):
                for name in list(recipes) if round_index % 2 == 0 else list(reversed(recipes)):
                    out = work / f"round{round_index}"
                    load[name].append(os.getloadavg()[0])
                    started = time.perf_counter()
                    trained = train_students(recipes[name], dataset, out,
                                             engine=LOCAL if name == "local" else engine)
                    times[name].append(time.perf_counter() - started)
                    runs = len(trained)
                    assert not any(run.skipped for run in trained)
                    print(f"round {round_index + 1} {name}: {times[name][-1]:.1f} s for {runs} runs", flush=True)
                    shutil.rmtree(out)
    finally:
        cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    local, one, two = (times[name] for name in ("local", "ray, one at a time", "ray, two at a time"))
    report = {
        "benchmark": "the Ray engine's overhead at equal parallelism and its parallel speed-up, on a student sweep",
        "sweep": {"student": "setfit all-minilm-l6-v2 (quickstart defaults)", "runs": runs,
                  "train_sizes": ["all", 4, 8], "repeats": 2, "train_rows": len(dataset["train"]),
                  "torch_threads_per_run": 1},
        "cluster": {"nodes": "head (0 CPU) + 2 workers (1 CPU each)", "start_seconds": round(cluster_seconds, 1)},
        "seconds": {name: [round(value, 1) for value in values] for name, values in times.items()},
        "load_average_before": load,
        "overhead_ray_one_at_a_time_over_local": spread([r / l for r, l in zip(one, local, strict=True)]),
        "speedup_one_over_two_at_a_time": spread([o / t for o, t in zip(one, two, strict=True)]),
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                    "python": platform.python_version(), "torch": torch.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
