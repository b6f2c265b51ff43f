"""Remote generation throughput against `transformers serve` replicas on loopback: sequential vs bounded concurrency
against one replica, and one replica vs two (``teacher.base_url: [URL, URL]``).

Each replica is a `transformers serve` process of the embedded SmolLM2-135M-Instruct with continuous batching (so
that concurrent requests share forward passes, as vLLM and TGI do; its paged KV cache bounded to 8192 tokens) and one
torch thread. The teacher is hfsynth's remote teacher, as both engines use it: ``max_concurrency: 1`` (sequential),
``max_concurrency: N`` (default 8) against one replica, and the same against each of two replicas. The prompts are the
quickstart's generation prompts. Settings alternate within each round so that machine noise hits them alike; calls/s
is prompts / wall time; the load average is recorded before each setting. No Ray: this is the remote teacher alone
(on the Ray engine, each teacher replica actor holds such a client).

    python benchmarks/remote_generation.py [--prompts 16] [--rounds 3] [--max-new-tokens 32] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the replicas are started as the test fixture starts one (tests/serve_fixtures.py)

from hfsynth.generation.prompts import GenerationRequest, generation_prompt  # noqa: E402
from hfsynth.recipe.schema import SamplingParams, TeacherConfig  # noqa: E402
from hfsynth.recipes.files import load_recipe  # noqa: E402
from hfsynth.teachers import load_teacher  # noqa: E402
from tests.serve_fixtures import start_transformers_serve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8, help="max_concurrency of the concurrent settings")
    parser.add_argument("--no-continuous-batching", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "remote_generation.json"))
    args = parser.parse_args()

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    labels = recipe.label_names
    prompts = [generation_prompt(recipe, GenerationRequest(labels[i % len(labels)], "en", 2, i // len(labels)))
               for i in range(args.prompts)]
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.8)
    # A bounded paged KV cache (8192 tokens): left to itself, it sizes the cache from the machine's memory, and two
    # servers on one machine got one of them killed by the kernel's OOM killer.
    batching = ([] if args.no_continuous_batching else
                ["--continuous-batching", "--cb-block-size", "32", "--cb-num-blocks", "256",
                 "--cb-max-batch-tokens", "512"])
    work = Path(tempfile.mkdtemp(prefix="ray-remote-"))
    replicas = []
    try:
        for index in range(2):
            (work / f"replica{index}").mkdir()
            replicas.append(start_transformers_serve(work / f"replica{index}", batching))
        for replica in replicas:
            try:
                replica.wait_ready(600)
            except RuntimeError as error:
                raise SystemExit(str(error)) from None
        hub_id = replicas[0].model
        urls = [replica.base_url for replica in replicas]
        bound = args.concurrency
        settings = {
            "one replica, sequential (max_concurrency 1)": {"base_url": urls[0], "max_concurrency": 1},
            f"one replica, max_concurrency {bound}": {"base_url": urls[0], "max_concurrency": bound},
            f"two replicas, max_concurrency {bound} each": {"base_url": urls, "max_concurrency": bound},
        }
        teachers = {name: load_teacher(TeacherConfig(backend="remote", model=hub_id, timeout=600, **options))
                    for name, options in settings.items()}
        # Warm-up: the first requests of a server compile and allocate.
        for teacher in teachers.values():
            teacher.generate(prompts[:2], sampling, 0)
        rates: dict[str, list[float]] = {name: [] for name in settings}
        load: dict[str, list[float]] = {name: [] for name in settings}
        for round_index in range(args.rounds):
            names = list(settings) if round_index % 2 == 0 else list(reversed(settings))
            for name in names:
                load[name].append(os.getloadavg()[0])
                started = time.perf_counter()
                answers = teachers[name].generate(prompts, sampling, 1000 + round_index)
                seconds = time.perf_counter() - started
                assert len(answers) == len(prompts)
                rates[name].append(len(prompts) / seconds)
                print(f"round {round_index + 1} {name}: {rates[name][-1]:.2f} calls/s", flush=True)
        for teacher in teachers.values():
            teacher.close()
    finally:
        for replica in replicas:
            if replica.process.poll() is not None:
                log = replica.log_path.read_text(errors="replace")[-2000:]
                print(f"replica {replica.base_url} exited with code {replica.process.returncode}:\n{log}",
                      file=sys.stderr)
            replica.stop()

    sequential, concurrent, two = (rates[name] for name in settings)
    report = {
        "benchmark": "remote generation calls/s against transformers serve replicas on loopback",
        "model": hub_id,
        "prompts": args.prompts,
        "max_new_tokens": args.max_new_tokens,
        "server": {"continuous_batching": not args.no_continuous_batching, "torch_threads": 1},
        "max_concurrency": bound,
        "calls_per_s": {name: [round(value, 2) for value in values] for name, values in rates.items()},
        "load_average_before": load,
        "concurrency_over_sequential": {
            "per_round": [round(c / s, 2) for c, s in zip(concurrent, sequential, strict=True)],
            "median": round(statistics.median(c / s for c, s in zip(concurrent, sequential, strict=True)), 2),
            "goal": ">= 3"},
        "two_replicas_over_one": {
            "per_round": [round(t / c, 2) for t, c in zip(two, concurrent, strict=True)],
            "median": round(statistics.median(t / c for t, c in zip(two, concurrent, strict=True)), 2)},
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                    "python": platform.python_version()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
