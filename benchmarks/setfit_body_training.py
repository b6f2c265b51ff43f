"""SetFit on multilingual-e5-small: what training the body costs and buys, per ``body_training`` setting.

The three settings of ``SetFitParams.body_training`` train hfsynth's own SetFit student on the same data with the same
seeds: "full" (every body weight, setfit's default), "frozen-embeddings" (all but the 250k-token embedding matrix)
and "none" (no contrastive training: the pretrained body encodes, only the logistic-regression head is fitted).
Training data stands in for synthetic data: real SIB-200 English training sentences, ``--per-label`` per topic; the
score is macro-F1 on the 204 SIB-200 English test sentences.

Each run is a fresh process (so its peak memory is its own). The two trained settings of a repeat run side by side,
at the same moment, one process and ``--threads`` torch threads each: on a shared machine the load changes from minute
to minute, and only steps taken at the same time are comparable. Their step times are compared over the steps that
ended while both were training (the frozen one finishes first; the rest of the full one ran with a core to itself).

    python benchmarks/setfit_body_training.py [--steps 20] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SETTINGS = ("full", "frozen-embeddings", "none")
MODEL = "multilingual-e5-small"


def training_data(per_label: int, label_names: Sequence[str]) -> tuple[Any, list[str], list[str]]:
    """``per_label`` SIB-200 English training sentences per topic (file order) and the whole English test split."""
    import datasets

    from hfsynth.generation.samples import features

    def rows(split: str) -> list[dict[str, str]]:
        with (ROOT / "data" / "sib200" / "eng_Latn" / f"{split}.jsonl").open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    train_rows = rows("train")
    train = [row for label in label_names for row in [row for row in train_rows if row["label"] == label][:per_label]]
    columns = {"text": [row["text"] for row in train], "label": [row["label"] for row in train],
               "language": ["en"] * len(train), "teacher": ["real"] * len(train),
               "strategy": ["real"] * len(train), "prompt_id": ["real"] * len(train)}
    test = rows("test")
    return (datasets.Dataset.from_dict(columns, features=features(list(label_names))),
            [row["text"] for row in test], [row["label"] for row in test])


def run(setting: str, seed: int, steps: int, per_label: int, threads: int) -> dict[str, Any]:
    """One SetFit student trained and scored in this (fresh) process."""
    import torch
    from transformers import TrainerCallback

    from hfsynth.metrics import classification_scores
    from hfsynth.recipe.student_params import SetFitParams
    from hfsynth.recipes.files import load_recipe
    from hfsynth.students.setfit_student import SetFitStudent

    torch.set_num_threads(threads)
    recipe = load_recipe(ROOT / "recipes" / "sib200-multilingual.yaml")
    train, test_texts, test_labels = training_data(per_label, recipe.label_names)

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.started = 0.0
            self.seconds: list[float] = []
            self.ended_at: list[float] = []  # wall clock, comparable across processes

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.seconds.append(time.perf_counter() - self.started)
            self.ended_at.append(time.time())

    params = SetFitParams(body_training=setting, max_steps=steps, batch_size=16, max_length=64, seed=seed,
                          save_steps=10 * steps, device="cpu")
    student = SetFitStudent(recipe, MODEL, params)
    timer = StepTimer()
    with TemporaryDirectory() as checkpoints:
        started = time.perf_counter()
        student.train(train, Path(checkpoints), callbacks=[timer])
        train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = student.predict(test_texts, ["en"] * len(test_texts))
    predict_seconds = time.perf_counter() - started
    scores = classification_scores(test_labels, predicted, recipe.label_names)
    return {
        "setting": setting,
        "seed": seed,
        "train_rows": len(train),
        "test_rows": len(test_texts),
        "steps": len(timer.seconds),
        # The first step also builds the optimizer and warms up kernels: left out of the per-step figure.
        "step_seconds_median": statistics.median(timer.seconds[1:]) if len(timer.seconds) > 1 else None,
        "step_seconds": timer.seconds,
        "step_ended_at": timer.ended_at,
        "train_seconds": train_seconds,
        "predict_seconds": predict_seconds,
        "macro_f1": scores["macro_f1"],
        "accuracy": scores["accuracy"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    per_repeat = [{run["setting"]: run for run in runs if run["seed"] == seed} for seed in range(repeats)]
    # Steps 2.. (the first also builds the optimizer and warms up) that ended while both trained settings ran.
    overlapping: dict[tuple[str, int], list[float]] = {}
    for seed, repeat in enumerate(per_repeat):
        both_running_until = min(repeat[setting]["step_ended_at"][-1] for setting in ("full", "frozen-embeddings"))
        for setting in ("full", "frozen-embeddings"):
            timed = zip(repeat[setting]["step_seconds"][1:], repeat[setting]["step_ended_at"][1:], strict=True)
            overlapping[setting, seed] = [seconds for seconds, ended in timed if ended <= both_running_until]
    summary: dict[str, Any] = {}
    for setting in SETTINGS:
        chosen = [repeat[setting] for repeat in per_repeat]
        summary[setting] = {
            metric: spread([run[metric] for run in chosen])
            for metric in ("train_seconds", "macro_f1", "accuracy", "peak_rss_mib")
        }
        if setting != "none":
            summary[setting]["step_seconds"] = spread(
                [statistics.median(overlapping[setting, seed]) for seed in range(repeats)])
    summary["full_over_frozen_embeddings_step_time"] = spread(
        [statistics.median(overlapping["full", seed]) / statistics.median(overlapping["frozen-embeddings", seed])
         for seed in range(repeats)])
    summary["compared_full_steps"] = [len(overlapping["full", seed]) for seed in range(repeats)]
    summary["full_over_none_train_time"] = spread(
        [repeat["full"]["train_seconds"] / repeat["none"]["train_seconds"] for repeat in per_repeat])
    summary["macro_f1_frozen_embeddings_minus_full"] = spread(
        [repeat["frozen-embeddings"]["macro_f1"] - repeat["full"]["macro_f1"] for repeat in per_repeat])
    summary["macro_f1_none_minus_full"] = spread(
        [repeat["none"]["macro_f1"] - repeat["full"]["macro_f1"] for repeat in per_repeat])
    return summary


def markdown(result: dict[str, Any]) -> str:
    summary = result["summary"]

    def cell(value: dict[str, float], digits: int) -> str:
        return f"{value['median']:.{digits}f} ({value['min']:.{digits}f}-{value['max']:.{digits}f})"

    lines = [
        f"### SetFit on {MODEL}: body_training settings",
        "",
        f"{result['train_rows']} real SIB-200 English training sentences ({result['per_label']} per topic) standing in "
        f"for synthetic data, {result['steps']} contrastive steps of batch 16 (max length 64), macro-F1 on the "
        f"{result['test_rows']} English test sentences; {result['repeats']} repeats "
        f"(seeds 0..{result['repeats'] - 1}), "
        f"median (min-max). The two trained settings of a repeat ran side by side, {result['threads']} torch thread(s) "
        f"each, on a shared {result['machine']['cpus']}-core CPU; step times over the steps both were running "
        f"({', '.join(map(str, summary['compared_full_steps']))} full steps per repeat).",
        "",
        "| body_training | s per step | train s | macro-F1 | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        row = summary[setting]
        step = cell(row["step_seconds"], 2) if "step_seconds" in row else "no steps"
        lines.append(f"| {setting} | {step} | {cell(row['train_seconds'], 1)} | {cell(row['macro_f1'], 3)} | "
                     f"{cell(row['peak_rss_mib'], 0)} |")
    lines += [
        "",
        f"Per repeat: full / frozen-embeddings step time {cell(summary['full_over_frozen_embeddings_step_time'], 2)}x; "
        f"full / none train time {cell(summary['full_over_none_train_time'], 1)}x. "
        f"Macro-F1 minus full: frozen-embeddings {cell(summary['macro_f1_frozen_embeddings_minus_full'], 3)}, "
        f"none {cell(summary['macro_f1_none_minus_full'], 3)}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-label", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (two runs at a time)")
    parser.add_argument("--out", default=str(RESULTS / "setfit_body_training.json"))
    parser.add_argument("--summarize", action="store_true", help="only recompute the summary of the --out file's runs")
    args = parser.parse_args()
    out = Path(args.out)
    if args.summarize:
        result = json.loads(out.read_text())
        result["summary"] = summarize(result["runs"], result["repeats"])
        write(result, out)
        return

    runs = []
    for seed in range(args.repeats):
        for group in (("full", "frozen-embeddings"), ("none",)):
            # A fresh process per run: its peak memory is its own, and nothing is shared between settings.
            with ProcessPoolExecutor(max_workers=len(group), mp_context=get_context("spawn"),
                                     max_tasks_per_child=1) as pool:
                futures = [pool.submit(run, setting, seed, args.steps, args.per_label, args.threads)
                           for setting in group]
                for future in futures:
                    result = future.result()
                    print(f"{result['setting']:18s} seed {seed}: step {result['step_seconds_median']} s, "
                          f"train {result['train_seconds']:.1f} s, macro-F1 {result['macro_f1']:.3f}", flush=True)
                    runs.append(result)

    import torch

    result = {
        "benchmark": "SetFit body_training settings",
        "model": MODEL,
        "steps": args.steps,
        "per_label": args.per_label,
        "train_rows": runs[0]["train_rows"],
        "test_rows": runs[0]["test_rows"],
        "repeats": args.repeats,
        "threads": args.threads,
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "torch": torch.__version__},
        "summary": summarize(runs, args.repeats),
        "runs": runs,
    }
    write(result, out)


def write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
