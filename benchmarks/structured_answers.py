"""Structured answers (``generation.structured: json``) against numbered lines, at equal calls, on llama.cpp's server.

The quickstart recipe's teacher, SmolLM2-135M-Instruct, served by llama.cpp's server from the ``xllamacpp`` wheel on
the GGUF file the embedded model is built from (started as ``local_teacher_vs_llama_server.py`` starts it: ``-t`` =
hfsynth's thread count, ``--parallel`` = the remote teacher's ``max_concurrency``) and reached through hfsynth's remote
teacher. Each round plans 32 generation calls of the recipe (its own plan: labels, few-shot seeds, diversity
instructions, ``samples_per_call``; call indices and seeds move on every round) and asks them twice, once as numbered
lines and once as JSON with the schema in ``response_format`` (the server constrains decoding to it), the two taking
turns (order reversed every other round). Each answer is read as the generation stage reads it (at most the texts the
call asked for) and curated by the recipe's :class:`~hfsynth.generation.curation.Curator`, as the stage builds it.

Reported per setting: parse rate (answers giving at least one sample / calls), answers that were JSON, samples kept
per call after curation, ``teacher_chatter`` drops, every drop reason, and completion tokens (the server's usage) per
kept sample; mean and min-max over rounds, and the load average before each setting of each round.

Structured output is for chat teachers: the other embedded teacher, Gemma-3-270M, is a base model (hfsynth sends it
completion requests, which carry no schema), and its GGUF file has no chat template (checked below: llama-server would
wrap its messages in a generic template it was never trained on), so it is not measured.

    pip install xllamacpp   # or the ``bench`` extra
    python benchmarks/structured_answers.py [--rounds 3] [--calls 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from local_teacher_vs_llama_server import free_port, gguf_file, run_context, wait_ready

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SERVER_SCRIPT = Path(__file__).resolve().parent / "local_teacher_vs_llama_server.py"
SETTINGS = ("none", "json")
METRICS = ("parse_rate", "json_answers", "kept_per_call", "chatter_dropped", "completion_tokens_per_kept")


def chat_template(gguf: Path) -> str | None:
    """The chat template in a GGUF file's metadata, if it has one."""
    import gguf as gguf_format

    field = gguf_format.GGUFReader(str(gguf)).fields.get("tokenizer.chat_template")
    return None if field is None else bytes(field.parts[field.data[0]]).decode()


def plan_round(recipe: Any, calls: int, round_index: int, seeds: dict[str, dict[str, list[str]]]) -> list[Any]:
    """``calls`` calls of the recipe's own plan, spread over its labels, with call indices (so few-shot seeds and
    diversity instructions) no earlier round used."""
    from hfsynth.generation.plan import plan_requests

    labels, language, per_call = recipe.label_names, recipe.languages[0], recipe.generation.samples_per_call
    needed = {(language, label): per_call * (calls // len(labels) + (index < calls % len(labels)))
              for index, label in enumerate(labels)}
    planned = plan_requests(recipe, needed, round_index, seeds)
    assert len(planned) == calls, len(planned)
    return planned


def curator_for(recipe: Any, seed_texts: list[str], test_texts: list[str]) -> Any:
    """The recipe's curation, built as the generation stage builds it (no feedback rounds in the quickstart)."""
    from hfsynth.generation.curation import ChatterCheck, Curator, instruction_texts

    chatter = ChatterCheck.for_task(recipe.label_names, instruction_texts(recipe),
                                    recipe.curation.instruction_echo_share)
    return Curator(recipe.curation, seed_texts, test_texts, chatter)


def run_setting(recipe: Any, teacher: Any, requests: list[Any], curation_texts: tuple[list[str], list[str]],
                round_index: int) -> dict[str, Any]:
    """One setting's calls, read and curated; ``curation_texts``: the seed and the test texts."""
    from hfsynth.generation.parsing import parse_answer, parse_json_answer
    from hfsynth.generation.prompts import generation_prompt
    from hfsynth.generation.samples import Sample

    structured = recipe.generation.structured == "json"
    prompts = [generation_prompt(recipe, request, structured) for request in requests]
    load = os.getloadavg()
    tokens_before = teacher.stats.completion_tokens
    started = time.perf_counter()
    answers = teacher.generate(prompts, recipe.teacher.sampling, seed=round_index)
    seconds = time.perf_counter() - started
    tokens = teacher.stats.completion_tokens - tokens_before
    parsed = [parse_answer(answer, chat=True, structured=structured)[: request.count]
              for answer, request in zip(answers, requests, strict=True)]
    samples = [Sample(text, request.label, request.language, request.prompt_id)
               for texts, request in zip(parsed, requests, strict=True) for text in texts]
    curated = curator_for(recipe, *curation_texts).add(samples)
    reasons = Counter(drop.reason for drop in curated.dropped)
    calls, kept = len(requests), len(curated.kept)
    return {
        "calls": calls, "parse_rate": sum(bool(texts) for texts in parsed) / calls,
        "json_answers": sum(parse_json_answer(answer) is not None for answer in answers) / calls,
        "samples_parsed": len(samples), "samples_kept": kept, "kept_per_call": kept / calls,
        "chatter_dropped": reasons["teacher_chatter"], "drops": dict(sorted(reasons.items())),
        "completion_tokens": tokens, "completion_tokens_per_kept": tokens / kept if kept else None,
        "seconds": seconds, "loadavg_before": load,
        "example_answers": answers[:3],
    }


def bench(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from hfsynth.generation.plan import load_seed_examples
    from hfsynth.realdata import labelled_texts
    from hfsynth.recipes.files import load_recipe
    from hfsynth.reproducibility import compute_threads
    from hfsynth.teachers.remote import RemoteTeacher

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    recipes = {setting: recipe.model_copy(update={"generation": recipe.generation.model_copy(
        update={"structured": setting})}) for setting in SETTINGS}
    seeds = load_seed_examples(recipe)
    seed_texts = [text for by_label in seeds.values() for texts in by_label.values() for text in texts]
    curation_texts = (seed_texts, labelled_texts(recipe, recipe.evaluation.sets))
    threads = args.threads or compute_threads()
    port = free_port()
    gguf = gguf_file("smollm2-135m-instruct", scratch)
    server = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), "--serve", str(gguf), str(port),
                               str(args.parallel), str(threads), str(args.context)])
    runs: dict[str, list[dict[str, Any]]] = {setting: [] for setting in SETTINGS}
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, server)
        config = recipe.teacher.model_copy(update={
            "backend": "remote", "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "base_url": base_url,
            "max_concurrency": args.parallel, "timeout": 600.0, "prompt_format": "chat"})
        with RemoteTeacher(config) as teacher:
            warm = plan_round(recipe, args.parallel, args.rounds, seeds)  # untimed, call indices no round uses
            for setting in SETTINGS:
                run_setting(recipes[setting], teacher, warm, curation_texts, -1)
            for round_index in range(args.rounds):
                requests = plan_round(recipe, args.calls, round_index, seeds)
                for setting in SETTINGS if round_index % 2 == 0 else SETTINGS[::-1]:
                    run = run_setting(recipes[setting], teacher, requests, curation_texts, round_index)
                    runs[setting].append(run)
                    print(round_index, setting, {name: run[name] for name in METRICS}, flush=True)
    finally:
        server.kill()
        server.wait()
    summary = {setting: {name: summarize([run[name] for run in rounds]) for name in METRICS}
               for setting, rounds in runs.items()}
    return {"threads": threads, "recipe": "quickstart.yaml", "samples_per_call": recipe.generation.samples_per_call,
            "sampling": recipe.teacher.sampling.model_dump(), "summary": summary, "runs": runs}


def summarize(values: list[float | None]) -> dict[str, float] | None:
    present = [value for value in values if value is not None]
    if not present:
        return None
    return {"mean": statistics.fmean(present), "min": min(present), "max": max(present)}


def spread(value: dict[str, float] | None, digits: int, percent: bool = False) -> str:
    if value is None:
        return "-"
    scale, unit = (100, "%") if percent else (1, "")
    mean, low, high = (f"{value[key] * scale:.{digits}f}" for key in ("mean", "min", "max"))
    return f"{mean}{unit} ({low}-{high})"


def markdown(result: dict[str, Any]) -> str:
    teacher = result["models"]["smollm2-135m-instruct"]
    header = ("| `generation.structured` | parse rate | JSON answers | parsed per call | kept per call "
              "| chatter dropped (per round) | completion tokens per kept sample | load avg before |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for setting in SETTINGS:
        values, runs = teacher["summary"][setting], teacher["runs"][setting]
        loads = [run["loadavg_before"][0] for run in runs]
        parsed = summarize([run["samples_parsed"] / run["calls"] for run in runs])
        lines.append(f"| `{setting}` | {spread(values['parse_rate'], 0, True)} | "
                     f"{spread(values['json_answers'], 0, True)} | {spread(parsed, 2)} | "
                     f"{spread(values['kept_per_call'], 2)} | "
                     f"{spread(values['chatter_dropped'], 1)} | {spread(values['completion_tokens_per_kept'], 1)} | "
                     f"{', '.join(f'{load:.1f}' for load in loads)} |")
    drops = {setting: dict(sum((Counter(run["drops"]) for run in teacher["runs"][setting]), Counter()))
             for setting in SETTINGS}
    return "\n".join([
        f"SmolLM2-135M-Instruct on llama.cpp's server ({result['llama_cpp']['package']} "
        f"{result['llama_cpp']['version']}, {teacher['threads']} threads, {result['server_parallel']} slots), "
        f"{result['calls_per_round']} calls of the quickstart recipe per setting and round "
        f"(samples_per_call {teacher['samples_per_call']}), {result['rounds']} rounds: mean (min-max) over rounds; "
        "load average (1 min) before each round's run.", "", *lines, "",
        f"Drops over all rounds: {json.dumps(drops)}.", "",
        f"Not measured: {', '.join(f'{model} ({why})' for model, why in result['not_measured'].items())}.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=32)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="llama-server threads (default: hfsynth's count)")
    parser.add_argument("--context", type=int, default=1024, help="context tokens per server slot")
    parser.add_argument("--out", default=str(RESULTS / "structured_answers.json"))
    args = parser.parse_args()

    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        gemma_template = chat_template(gguf_file("gemma-3-270m", Path(scratch)))
        smollm = bench(args, Path(scratch))
    result = {
        "benchmark": "generation.structured: json against numbered lines, llama-server through the remote teacher",
        "calls_per_round": args.calls, "rounds": args.rounds, "server_parallel": args.parallel,
        **run_context(started), "models": {"smollm2-135m-instruct": smollm},
        "not_measured": {"gemma-3-270m": "a base model: hfsynth sends it completion requests, which carry no schema"
                         + ("" if gemma_template else "; its GGUF file has no chat template for /v1/chat/completions")},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
