"""What embedding in batches of one token length (hfsynth.embeddings) costs against sentence-transformers' own padded
batches: texts per second side by side in one process, and how far the padded vectors are from the canonical ones.

The same multilingual-e5-small model (loaded once) embeds the same SIB-200 training sentences of 11 languages both
ways, alternating, ``--repeats`` times; no store, nothing cached between repeats.

    python benchmarks/embedding_batches.py [--texts 2000] [--repeats 3]

Writes benchmarks/results/embedding_batches.json and embedding_batches.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load_teacher import SIB200_FOLDERS  # noqa: E402
from hfsynth.embeddings import Embedder, EmbeddingSpec  # noqa: E402
from hfsynth.reproducibility import pin_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODEL = "multilingual-e5-small"
PADDED_BATCH = 32  # sentence-transformers' default


def sentences(count: int) -> list[str]:
    texts = [json.loads(line)["text"] for folder in SIB200_FOLDERS.values()
             for line in (ROOT / "data" / "sib200" / folder / "train.jsonl").read_text().splitlines()]
    return random.Random(0).sample(sorted(set(texts)), count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    pin_threads()
    texts = sentences(arguments.texts)
    spec = EmbeddingSpec(MODEL, 128)
    model = Embedder(spec).model
    runs = []
    for repeat in range(arguments.repeats):
        started = time.perf_counter()
        canonical = Embedder(spec, model=model).encode(texts)
        by_length = time.perf_counter() - started
        started = time.perf_counter()
        padded = model.encode(texts, batch_size=PADDED_BATCH, convert_to_numpy=True)
        padded_seconds = time.perf_counter() - started
        run = {"repeat": repeat, "by_length_texts_per_s": len(texts) / by_length,
               "padded_texts_per_s": len(texts) / padded_seconds, "speedup": padded_seconds / by_length,
               "max_abs_difference": float(np.abs(padded - canonical).max()),
               "texts_differing": int((np.abs(padded - canonical).max(axis=1) > 0).sum()),
               "load_before": os.getloadavg()[0]}
        print(json.dumps(run), flush=True)
        runs.append(run)
    summary = {key: {"median": statistics.median(run[key] for run in runs), "min": min(run[key] for run in runs),
                     "max": max(run[key] for run in runs)}
               for key in ("by_length_texts_per_s", "padded_texts_per_s", "speedup", "max_abs_difference",
                           "texts_differing")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embedding_batches.json").write_text(json.dumps(
        {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "model": MODEL,
         "texts": len(texts), "runs": runs, "summary": summary}, indent=2))
    text = markdown(summary, len(texts), runs)
    (RESULTS / "embedding_batches.md").write_text(text)
    print(text)


def markdown(summary: dict, count: int, runs: list[dict]) -> str:
    def cell(key: str, digits: int = 0) -> str:
        row = summary[key]
        return f"{row['median']:.{digits}f} ({row['min']:.{digits}f}-{row['max']:.{digits}f})"

    return "\n".join([
        f"### Embedding {count:,} SIB-200 sentences with {MODEL}: by token length vs padded batches",
        "",
        f"{len(runs)} repeats side by side in one process, median (min-max).",
        "",
        "| batches | texts per second |",
        "|---|---:|",
        f"| one token length each (hfsynth.embeddings) | {cell('by_length_texts_per_s')} |",
        f"| padded, {PADDED_BATCH} per batch (sentence-transformers' default) | {cell('padded_texts_per_s')} |",
        "",
        f"By token length is {cell('speedup', 2)}x as fast; the padded vectors differ from it in "
        f"{cell('texts_differing')} of {count:,} texts, by at most {summary['max_abs_difference']['max']:.1e}.",
    ]) + "\n"


if __name__ == "__main__":
    main()
