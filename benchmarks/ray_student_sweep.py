"""Student sweep wall time: the local engine against the Ray engine with two worker nodes, the same sweep.

The sweep is the quickstart's SetFit student (all-MiniLM-L6-v2) trained on all the data and on 4 and 8 examples per
label, each with 2 seeds: 6 runs. Its data is real SIB-200 English training sentences (12 per label, the size of the
quickstart's synthetic set) in the synthetic dataset's schema, so no teacher is needed.

- local: the 6 runs one after the other in this process (torch's default thread count, all cores).
- ray: a loopback cluster of a head (no CPUs) and two worker nodes with one CPU each; every run a Ray task asking for
  one CPU and using one torch thread, so two runs train at a time. The cluster is up before the clock starts (as a
  real cluster is); the first Ray round includes starting and importing its worker processes.

Rounds alternate local and Ray, each in a fresh folder; ratios come from the same run of this script.

    python benchmarks/ray_student_sweep.py [--rounds 2] [--out benchmarks/results/ray_student_sweep.json]
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

import datasets
import torch
import yaml

from hfsynth.dataset import features
from hfsynth.execution import LOCAL
from hfsynth.recipe_files import load_recipe
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ray_student_sweep.json"))
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    from hfsynth.ray_engine import RayEngine

    work = Path(tempfile.mkdtemp(prefix="ray-sweep-"))
    recipe = load_recipe(sweep_recipe(work))
    dataset = real_sentences(recipe.label_names)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    cluster_seconds = time.perf_counter() - started
    times: dict[str, list[float]] = {"local": [], "ray": []}
    runs = 0
    try:
        with RayEngine(cluster.address) as engine:
            for round_index in range(args.rounds):
                for name in ("local", "ray"):
                    out = work / f"{name}-{round_index}"
                    started = time.perf_counter()
                    trained = train_students(recipe, dataset, out, engine=LOCAL if name == "local" else engine)
                    times[name].append(time.perf_counter() - started)
                    runs = len(trained)
                    assert not any(run.skipped for run in trained)
                    print(f"round {round_index + 1} {name}: {times[name][-1]:.1f} s for {runs} runs", flush=True)
                    shutil.rmtree(out)
    finally:
        cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    ratios = [local / ray for local, ray in zip(times["local"], times["ray"], strict=True)]
    report = {
        "benchmark": "student sweep wall time, local engine vs Ray engine with two worker nodes",
        "sweep": {"student": "setfit all-minilm-l6-v2 (quickstart defaults)", "runs": runs,
                  "train_sizes": ["all", 4, 8], "repeats": 2, "train_rows": len(dataset["train"])},
        "local": {"seconds": [round(value, 1) for value in times["local"]],
                  "torch_threads": torch.get_num_threads()},
        "ray": {"seconds": [round(value, 1) for value in times["ray"]], "nodes": "head (0 CPU) + 2 workers (1 CPU)",
                "per_run": "1 CPU, 1 torch thread", "cluster_start_seconds": round(cluster_seconds, 1)},
        "speedup_local_over_ray": {"per_round": [round(value, 2) for value in ratios],
                                   "median": round(statistics.median(ratios), 2)},
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()[0],
                    "python": platform.python_version(), "torch": torch.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
