"""Local teacher classification: the shared prompt prefix read once and packed batches, against whole prompts.

Both paths score the same prompts with the same loaded model in one process: recipe-style classification prompts
(``hfsynth.generation.prompts.classification_prompt``, the quickstart recipe's task and labels, one real SIB-200 demonstration
per topic, so the shared prefix is long) for SIB-200 English test sentences, sent in chunks of the teacher's batch
size as the evaluation sends them. "prefix" is ``LocalTeacher.classify`` (what the pipeline runs); "whole prompts" is
the scoring before prefix reuse, kept as ``label_log_likelihoods(..., prefix=None)``.

Side by side at a fine grain: the two paths take turns chunk by chunk (alternating which goes first), each path's
time summed over its chunks. On a shared machine the load changes within seconds, so both wall time and this
process's CPU time are measured; with one torch thread (the default) CPU time is the work itself, whatever the
neighbours do. Each round starts the prefix path with an empty prefix cache, so reading the prefix is part of its
time; an untimed warm-up of both paths comes first.

    python benchmarks/teacher_classification.py [--texts 40] [--rounds 3] [--threads 1] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from hfsynth.language_model import PrefixCache
from hfsynth.prompting import LabelScores, Prompt, classification_prompt
from hfsynth.recipes.files import load_recipe
from hfsynth.teachers.local import LocalTeacher

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def rows(split: str) -> list[dict[str, str]]:
    with (ROOT / "data" / "sib200" / "eng_Latn" / f"{split}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def probabilities(scores: list[LabelScores], labels: list[str]) -> torch.Tensor:
    return torch.tensor([[score.probabilities[label] for label in labels] for score in scores])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "quickstart.yaml"))
    parser.add_argument("--texts", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    # float32 by default: there both paths compute the same numbers up to rounding (bfloat16 moves probabilities by
    # up to a few hundredths whichever way a prompt is batched, which can flip a near-tie).
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", default=str(RESULTS / "teacher_classification.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    recipe = load_recipe(args.recipe)
    labels = recipe.label_names
    train = rows("train")
    demonstrations = [(row["text"], label) for label in labels
                      for row in [row for row in train if row["label"] == label][:1]]
    test = rows("test")[: args.texts]
    prompts = [classification_prompt(recipe, row["text"], "en", demonstrations) for row in test]
    teacher = LocalTeacher(recipe.teacher.model_copy(update={"dtype": args.dtype}))
    chunks = [prompts[start : start + teacher.batch_size] for start in range(0, len(prompts), teacher.batch_size)]
    ids = teacher.lm.encode(prompts)
    lengths = [len(prompt_ids) for prompt_ids in ids]

    def with_prefix(chunk: list[Prompt]) -> list[LabelScores]:
        return teacher.classify(chunk, labels)

    def whole_prompts(chunk: list[Prompt]) -> list[LabelScores]:
        return [LabelScores.from_logprobs(dict(zip(labels, row)))
                for row in teacher.lm.label_log_likelihoods(chunk, labels, teacher.batch_size, prefix=None)]

    paths = {"prefix": with_prefix, "whole_prompts": whole_prompts}
    # Untimed warm-up of both paths on the first chunk (kernel choice, allocator, lazy imports).
    for path in paths.values():
        path(chunks[0])
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    outputs: dict[str, list[LabelScores]] = {}
    ratios = []
    for round_index in range(args.rounds):
        teacher.prefix = PrefixCache()  # the prefix is read again in every round: it is part of the cost
        seconds = dict.fromkeys(paths, 0.0)
        cpu_seconds = dict.fromkeys(paths, 0.0)
        outputs = {name: [] for name in paths}
        for chunk_index, chunk in enumerate(chunks):
            for name in list(paths) if chunk_index % 2 == 0 else list(reversed(paths)):
                started, cpu_started = time.perf_counter(), time.process_time()
                outputs[name] += paths[name](chunk)
                seconds[name] += time.perf_counter() - started
                cpu_seconds[name] += time.process_time() - cpu_started
        for name in paths:
            runs[name].append({"seconds": seconds[name], "texts_per_s": len(prompts) / seconds[name],
                               "cpu_seconds": cpu_seconds[name], "texts_per_cpu_s": len(prompts) / cpu_seconds[name]})
        ratios.append({"wall": seconds["whole_prompts"] / seconds["prefix"],
                       "cpu": cpu_seconds["whole_prompts"] / cpu_seconds["prefix"]})
        print(f"round {round_index}: " + ", ".join(f"{name} {len(prompts) / seconds[name]:.2f} texts/s "
                                                    f"({len(prompts) / cpu_seconds[name]:.2f} per CPU s)"
                                                    for name in paths), flush=True)

    fast, slow = outputs["prefix"], outputs["whole_prompts"]
    gold = [row["label"] for row in test]
    summary: dict[str, Any] = {
        name: {metric: spread([run[metric] for run in name_runs]) for metric in ("texts_per_s", "texts_per_cpu_s")}
        for name, name_runs in runs.items()
    }
    summary["speedup_prefix_over_whole"] = {kind: spread([ratio[kind] for ratio in ratios]) for kind in ("wall", "cpu")}
    summary["identical_predictions"] = [a.label for a in fast] == [b.label for b in slow]
    summary["prediction_agreement"] = sum(a.label == b.label for a, b in zip(fast, slow, strict=True)) / len(fast)
    summary["max_probability_difference"] = float((probabilities(fast, labels) - probabilities(slow, labels))
                                                  .abs().max())
    summary["accuracy"] = sum(score.label == label for score, label in zip(fast, gold, strict=True)) / len(gold)
    result = {
        "benchmark": "local teacher classification: shared prefix vs whole prompts",
        "model": recipe.teacher.model,
        "dtype": str(teacher.lm.model.dtype),
        "texts": len(prompts),
        "batch_size": teacher.batch_size,
        "demonstrations": len(demonstrations),
        "prompt_tokens": {"min": min(lengths), "max": max(lengths)},
        "shared_prefix_tokens": len(os.path.commonprefix(ids)),
        # Per round: the common prefix, extended where a chunk's texts happen to start alike.
        "prefix_tokens_read_per_round": teacher.prefix.tokens_read,
        "rounds": args.rounds,
        "threads": args.threads,
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(), "torch": torch.__version__},
        "summary": summary,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def markdown(result: dict[str, Any]) -> str:
    summary = result["summary"]

    def cell(value: dict[str, float]) -> str:
        return f"{value['median']:.2f} ({value['min']:.2f}-{value['max']:.2f})"

    return "\n".join([
        "### Local teacher classification: shared prefix vs whole prompts",
        "",
        f"{result['model']} ({result['dtype'].removeprefix('torch.')}), {result['texts']} SIB-200 English test "
        f"sentences, quickstart-recipe classification prompts with {result['demonstrations']} demonstrations "
        f"({result['prompt_tokens']['min']}-{result['prompt_tokens']['max']} tokens, "
        f"{result['shared_prefix_tokens']} of them shared), chunks of {result['batch_size']}, the two paths taking "
        f"turns chunk by chunk; {result['rounds']} rounds, median (min-max), {result['threads']} torch thread(s) on a "
        f"shared {result['machine']['cpus']}-core CPU.",
        "",
        "| path | texts/s (wall clock) | texts per CPU second |",
        "|---|---|---|",
        f"| shared prefix, packed batches (LocalTeacher.classify) | {cell(summary['prefix']['texts_per_s'])} | "
        f"{cell(summary['prefix']['texts_per_cpu_s'])} |",
        f"| whole prompts (before) | {cell(summary['whole_prompts']['texts_per_s'])} | "
        f"{cell(summary['whole_prompts']['texts_per_cpu_s'])} |",
        "",
        f"Speed-up per round: {cell(summary['speedup_prefix_over_whole']['cpu'])}x in CPU time, "
        f"{cell(summary['speedup_prefix_over_whole']['wall'])}x in wall-clock time. Identical predictions: "
        f"{'yes' if summary['identical_predictions'] else 'no'} ({summary['prediction_agreement']:.0%} agree; "
        f"largest probability difference {summary['max_probability_difference']:.1e}); teacher accuracy "
        f"{summary['accuracy']:.3f}.",
        "",
    ])


if __name__ == "__main__":
    main()
