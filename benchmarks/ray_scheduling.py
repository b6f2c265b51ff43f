"""What the Ray engine costs per unit as a grid grows: ``RayEngine.map`` over 10, 100 and 1,000 trivial units (a
unit that returns its item at once) on a three-node loopback cluster (one CPU per node, as in tests/test_ray.py),
so that the paper grid's scheduling cost can be projected (about 2,800 trainings and 31,000 evaluations).

Per size and round: the wall time of the whole ``map`` (submitting, scheduling, running, streaming results back),
that time per unit, and the driver's resident memory before and after (RSS, psutil). Each size runs ``--rounds``
times in one cluster, sizes interleaved; the load average is recorded before and after.

Then, the same trivial units through Ray's own libraries, as the student grid could run on them: Ray Tune (one trial
per unit, ``tune.Tuner`` over a grid search, results kept in a local ``storage_path``) and Ray Data (one row per
unit, ``Dataset.map``), on the same cluster and sizes (``--libraries-up-to`` bounds their sizes); their ratio is to
Engine.map's median at the same size.

    python benchmarks/ray_scheduling.py [--rounds 3] [--sizes 10,100,1000] [--libraries-up-to 100]
        [--out benchmarks/results/ray_scheduling.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def trivial_unit(context: object, item: int) -> int:
    return item


def tune_trial(config: dict) -> dict:
    return {"item": config["item"]}


def run_tune(size: int, storage: Path) -> None:
    from ray import tune

    tuner = tune.Tuner(tune.with_resources(tune_trial, {"cpu": 1}),
                       param_space={"item": tune.grid_search(list(range(size)))},
                       run_config=tune.RunConfig(storage_path=str(storage), name=f"grid-{size}", verbose=0))
    results = tuner.fit()
    assert sorted(result.metrics["item"] for result in results) == list(range(size))


def run_data(size: int) -> None:
    import ray.data

    rows = ray.data.from_items([{"item": index} for index in range(size)]).map(
        lambda row: {"item": row["item"]}, num_cpus=1).take_all()
    assert sorted(row["item"] for row in rows) == list(range(size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--libraries-up-to", type=int, default=100,
                        help="The largest size Ray Tune and Ray Data run (a trial costs far more than a unit).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray_scheduling.json")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    import psutil
    import ray
    from ray.cluster_utils import Cluster

    from hfsynth.engines.base import UnitSpec
    from hfsynth.engines.ray_engine import RayEngine

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    load_before = os.getloadavg()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    driver = psutil.Process()
    measurements: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
    library_seconds: dict[str, dict[int, list[float]]] = {"tune": {}, "data": {}}
    storage = Path(tempfile.mkdtemp(prefix="hfsynth-tune-"))
    try:
        with RayEngine(cluster.address) as engine:
            spec = UnitSpec("trivial units")  # the default unit resources: one CPU
            list(engine.map(trivial_unit, list(range(30)), None, spec))  # start the worker pool first
            # Engine.map first, every round, then Ray's libraries: a Tune or Data run replaces the workers that
            # Engine.map's units reuse (another runtime environment), which would charge their start-up to it.
            for round_index in range(args.rounds):
                for size in sizes:
                    rss_before = driver.memory_info().rss
                    started = time.perf_counter()
                    results = dict(engine.map(trivial_unit, list(range(size)), None, spec))
                    seconds = time.perf_counter() - started
                    assert results == {index: index for index in range(size)}
                    measurements[size].append({
                        "seconds": round(seconds, 4),
                        "ms_per_unit": round(1000 * seconds / size, 3),
                        "driver_rss_mb_before": round(rss_before / 2**20, 1),
                        "driver_rss_mb_after": round(driver.memory_info().rss / 2**20, 1),
                    })
                    print(f"round {round_index + 1}: {size} units in {seconds:.2f} s "
                          f"({1000 * seconds / size:.1f} ms per unit)", flush=True)
            for round_index in range(args.rounds):
                for size in (size for size in sizes if size <= args.libraries_up_to):
                    for library, run in (("tune", lambda size=size: run_tune(size, storage)),
                                         ("data", lambda size=size: run_data(size))):
                        started = time.perf_counter()
                        run()
                        elapsed = time.perf_counter() - started
                        library_seconds[library].setdefault(size, []).append(round(elapsed, 4))
                        print(f"round {round_index + 1}: {size} units through Ray {library} in {elapsed:.2f} s",
                              flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(storage, ignore_errors=True)

    summary = {}
    for size, rounds in measurements.items():
        per_unit = [entry["ms_per_unit"] for entry in rounds]
        growth = [entry["driver_rss_mb_after"] - entry["driver_rss_mb_before"] for entry in rounds]
        summary[str(size)] = {
            "ms_per_unit_median": statistics.median(per_unit),
            "ms_per_unit_min": min(per_unit),
            "ms_per_unit_max": max(per_unit),
            "driver_rss_growth_mb_max": round(max(growth), 1),
            "driver_rss_mb_after_max": max(entry["driver_rss_mb_after"] for entry in rounds),
        }
    libraries = {
        library: {str(size): {"ms_per_unit_median": round(1000 * statistics.median(values) / size, 3),
                              "ratio_to_engine_map_median": round(
                                  statistics.median(values) / statistics.median(
                                      entry["seconds"] for entry in measurements[size]), 2),
                              "seconds": values}
                  for size, values in by_size.items()}
        for library, by_size in library_seconds.items()
    }
    largest = summary[str(max(sizes))]["ms_per_unit_median"]
    grid_units = 2_800 + 31_000
    results = {
        "benchmark": "ray_scheduling",
        "command": "python benchmarks/ray_scheduling.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "ray": ray.__version__},
        "cluster": "3 nodes on loopback (ray.cluster_utils.Cluster), 1 CPU each; units ask 1 CPU",
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "rounds": args.rounds,
        "measurements": {str(size): rounds for size, rounds in measurements.items()},
        "summary": summary,
        "ray_libraries": libraries,
        "projection": {
            "grid_units": grid_units,
            "scheduling_hours_at_largest_size_rate": round(largest * grid_units / 1000 / 3600, 3),
            "note": "trivial units on 3 one-CPU nodes: Ray's cost per unit at this parallelism, not a unit's work",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for size, entry in summary.items():
        print(f"{size:>5} units: {entry['ms_per_unit_median']:.1f} ms per unit "
              f"({entry['ms_per_unit_min']:.1f}-{entry['ms_per_unit_max']:.1f}), driver RSS growth <= "
              f"{entry['driver_rss_growth_mb_max']} MB")
    for library, by_size in libraries.items():
        for size, entry in by_size.items():
            print(f"Ray {library}, {size:>5} units: {entry['ms_per_unit_median']:.1f} ms per unit, "
                  f"{entry['ratio_to_engine_map_median']}x Engine.map's time")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
