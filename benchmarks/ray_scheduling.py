"""What the Ray engine costs per unit as a grid grows: ``RayEngine.map`` over 10, 100 and 1,000 trivial units (a
unit that returns its item at once) on a three-node loopback cluster (one CPU per node, as in tests/test_ray.py),
so that the paper grid's scheduling cost can be projected (about 2,800 trainings and 31,000 evaluations).

Per size and round: the wall time of the whole ``map`` (submitting, scheduling, running, streaming results back),
that time per unit, and the driver's resident memory before and after (RSS, psutil). Each size runs ``--rounds``
times in one cluster, sizes interleaved; the load average is recorded before and after.

    python benchmarks/ray_scheduling.py [--rounds 3] [--sizes 10,100,1000]
        [--out benchmarks/results/ray_scheduling.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def trivial_unit(context: object, item: int) -> int:
    return item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray_scheduling.json")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    import psutil
    import ray
    from ray.cluster_utils import Cluster

    from hfsynth.execution import UnitSpec
    from hfsynth.ray_engine import RayEngine

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    load_before = os.getloadavg()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    driver = psutil.Process()
    measurements: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
    try:
        with RayEngine(cluster.address) as engine:
            spec = UnitSpec("trivial units")  # the default unit resources: one CPU
            list(engine.map(trivial_unit, list(range(3)), None, spec))  # warm the worker pool
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
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()

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
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
