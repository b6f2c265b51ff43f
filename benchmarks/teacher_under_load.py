"""The local teacher beside a CPU hog: generation speed by thread count and OpenMP wait policy, idle and under load.

Each configuration runs in a fresh process (the wait policy is read once, when torch loads its OpenMP runtime):
the quickstart teacher (SmolLM2-135M, the recipe's dtype) generates one batch of fresh prompts per round, alone and
then with ``--hogs`` busy-looping processes beside it (``python -c 'while True: pass'``), the two phases taking turns
round by round. Output tokens/s over wall time, median and range over rounds; the load average is recorded before
every round ("idle" means no hog of ours: other processes on a shared machine still run).

Wait policies: "default" (libgomp spins a while before sleeping at each barrier), "PASSIVE" (waiting threads sleep
at once: ``OMP_WAIT_POLICY=PASSIVE``, what hfsynth sets). The same texts under every policy are checked, since a
policy must not change results.

    python benchmarks/teacher_under_load.py [--rounds 3] [--hogs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HOG = "while True: pass"


def worker(threads: int, rounds: int, prompts: int, max_new_tokens: int, hogs: int) -> dict[str, Any]:
    """In the child: load the teacher, then per round time one generation alone and one beside ``hogs`` busy
    processes."""
    import torch  # before hfsynth, which would set the PASSIVE policy: "default" must stay libgomp's default

    from hfsynth.generation.prompts import GenerationRequest, generation_prompt
    from hfsynth.recipes.files import load_recipe
    from hfsynth.teachers.local import LocalTeacher

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    labels = recipe.label_names
    teacher = LocalTeacher(recipe.teacher.model_copy(update={"batch_size": prompts}))
    torch.set_num_threads(threads)
    sampling = recipe.teacher.sampling.model_copy(update={"max_new_tokens": max_new_tokens})
    counter = iter(range(10**6))

    def fresh() -> list:  # new diversity round numbers: prompts never seen before in this process
        return [generation_prompt(recipe, GenerationRequest(labels[i % len(labels)], "en", 2, next(counter)))
                for i in range(prompts)]

    teacher.generate(fresh(), sampling, seed=0)  # warm-up
    # Idle and loaded rounds alternate, so that load from elsewhere drifting over time hits both phases alike.
    phases: dict[str, Any] = {phase: {"tokens_per_s": [], "loadavg_before": [], "texts": []}
                              for phase in ("idle", "loaded")}
    for round_index in range(rounds):
        for phase in ("idle", "loaded"):
            hog_processes = [subprocess.Popen([sys.executable, "-c", HOG])
                             for _ in range(hogs if phase == "loaded" else 0)]
            try:
                time.sleep(1.0)  # the hogs are running (idle: the same pause)
                phases[phase]["loadavg_before"].append(os.getloadavg())
                before = teacher.stats.completion_tokens
                started = time.perf_counter()
                answers = teacher.generate(fresh(), sampling, seed=round_index)
                seconds = time.perf_counter() - started
            finally:
                for process in hog_processes:
                    process.kill()
                    process.wait()
            phases[phase]["tokens_per_s"].append((teacher.stats.completion_tokens - before) / seconds)
            phases[phase]["texts"].append(answers)
    return {"dtype": str(teacher.lm.model.dtype), "threads": torch.get_num_threads(), **phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--worker", nargs=2, metavar=("THREADS", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS / "teacher_under_load.json"))
    args = parser.parse_args()
    if args.worker:
        result = worker(int(args.worker[0]), args.rounds, args.prompts, args.max_new_tokens, args.hogs)
        Path(args.worker[1]).write_text(json.dumps(result))
        return

    configurations: list[dict[str, Any]] = []
    for threads in (int(value) for value in args.threads.split(",")):
        for policy in ("default", "PASSIVE"):
            env = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            out = RESULTS / f".teacher_under_load-{threads}-{policy}.json"
            subprocess.run([sys.executable, __file__, "--worker", str(threads), str(out), "--rounds", str(args.rounds),
                            "--hogs", str(args.hogs), "--prompts", str(args.prompts),
                            "--max-new-tokens", str(args.max_new_tokens)], env=env, check=True)
            result = json.loads(out.read_text())
            out.unlink()
            summary = {phase: {"median": statistics.median(result[phase]["tokens_per_s"]),
                               "min": min(result[phase]["tokens_per_s"]), "max": max(result[phase]["tokens_per_s"])}
                       for phase in ("idle", "loaded")}
            configurations.append({
                "threads": threads, "wait_policy": policy, "dtype": result["dtype"], **summary,
                "loaded_over_idle": summary["loaded"]["median"] / summary["idle"]["median"],
                "loadavg_before": {phase: result[phase]["loadavg_before"] for phase in ("idle", "loaded")},
                "tokens_per_s": {phase: result[phase]["tokens_per_s"] for phase in ("idle", "loaded")},
                "texts": {phase: result[phase]["texts"] for phase in ("idle", "loaded")},
            })
            print(json.dumps({key: configurations[-1][key] for key in
                              ("threads", "wait_policy", "idle", "loaded", "loaded_over_idle")}), flush=True)
    # A wait policy must not change what is generated: compare texts across policies at the same thread count.
    same_texts = {str(threads): len({json.dumps(c["texts"]) for c in configurations if c["threads"] == threads}) == 1
                  for threads in {c["threads"] for c in configurations}}
    # Every configuration got the same prompts and seeds: do texts depend on the thread count (same policy)?
    by_threads = {c["threads"]: json.dumps(c["texts"]) for c in configurations if c["wait_policy"] == "PASSIVE"}
    same_across_threads = len(set(by_threads.values())) == 1
    for configuration in configurations:
        del configuration["texts"]
    result = {
        "benchmark": "local teacher generation beside a CPU hog",
        "model": "smollm2-135m-instruct", "prompts_per_round": args.prompts, "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds, "hogs": args.hogs,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "loadavg_at_end": os.getloadavg(),
        "same_texts_across_wait_policies": same_texts,
        "same_texts_across_thread_counts": same_across_threads,
        "configurations": configurations,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
