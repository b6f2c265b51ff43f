"""Embeddings computed once per run (hfsynth.embeddings): a text's vector is the same in any batch and at any thread
count, the run's store gives back exactly what was computed, and a run's stages (quality report, head-only SetFit
on synthetic and human data, its evaluation) embed each text once, scoring as a fresh computation would."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from hfsynth import embeddings
from hfsynth.embeddings import Embedder, EmbeddingSpec, EmbeddingStore
from hfsynth.evaluation import run_evaluation
from hfsynth.quality import write_quality
from hfsynth.runs.folder import RunFolder
from hfsynth.runs.records import RunStats
from hfsynth.stage_stats import measured_stage
from hfsynth.students.base import Student
from hfsynth.text_measures import cosine_distances, mean_pairwise_distance
from hfsynth.training import train_students
from tests.student_helpers import sib200_rows, synthetic_dataset
from tests.test_evaluation import AnswerKeyTeacher, reference_recipe, synthetic_dataset_folder

MODEL = "all-minilm-l6-v2"
SPEC = EmbeddingSpec(MODEL)


def texts(count: int = 60) -> list[str]:
    rows = sib200_rows("en", "train") + sib200_rows("de", "train")
    return [row["text"] for row in random.Random(0).sample(rows, count)]


def test_an_embedding_is_the_same_alone_in_any_batch_and_at_any_thread_count() -> None:
    sample = texts()
    together = Embedder(SPEC).encode(sample)
    alone = np.stack([Embedder(SPEC).encode([text])[0] for text in sample[:12]])
    assert np.array_equal(together[:12], alone)  # bit for bit, not merely close
    shuffled = sample[::-1][:25]
    assert np.array_equal(Embedder(SPEC).encode(shuffled), together[::-1][:25])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert np.array_equal(Embedder(SPEC).encode(sample), together)
    finally:
        torch.set_num_threads(threads)
    # What plain padded batches give differs in the last bits: the reason for batching by length.
    padded = Embedder(SPEC).model.encode(sample, batch_size=32, convert_to_numpy=True)
    assert np.allclose(padded, together, atol=1e-5)


def test_the_store_gives_back_what_was_computed_and_computes_nothing_twice(tmp_path: Path) -> None:
    store = tmp_path / "embeddings.sqlite"
    sample = texts(30)
    long_text = " ".join(sample[:6])  # longer than 16 tokens: truncated under a 16-token limit
    before = embeddings.snapshot()
    first = Embedder(SPEC, store=store).encode([*sample, long_text])
    assert embeddings.counts_since(before) == {"computed": 31, "reused": 0}

    before = embeddings.snapshot()
    again = Embedder(SPEC, store=store).encode([*sample, long_text])
    assert np.array_equal(again, first) and embeddings.counts_since(before) == {"computed": 0, "reused": 31}

    # Another token limit: texts it does not truncate share the stored vectors; the truncated one is its own.
    before = embeddings.snapshot()
    short = Embedder(EmbeddingSpec(MODEL, max_length=16), store=store)
    lengths = short._keys_and_lengths(sample)[1]
    fitting = [text for text in sample if lengths[text] < 16]
    assert 0 < len(fitting) < len(sample)
    vectors = short.encode([*fitting, long_text])
    assert embeddings.counts_since(before) == {"computed": 1, "reused": len(fitting)}
    assert np.array_equal(vectors[:-1], first[[sample.index(text) for text in fitting]])
    assert not np.array_equal(vectors[-1], first[-1])
    stored = EmbeddingStore(store)
    assert len(stored) == 32
    stored.close()


def test_a_table_of_known_texts_needs_no_model() -> None:
    sample = texts(10)
    table = Embedder(SPEC).table(sample)
    reader = Embedder(SPEC, known=table, normalize=True)
    vectors = reader.encode(sample[::-1])
    assert reader._model is None  # nothing loaded: a unit on a cluster only looks its texts up
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(vectors[-1], table.vectors[0] / np.linalg.norm(table.vectors[0]))


def test_mean_pairwise_distance_without_the_pair_matrix_matches_it() -> None:
    vectors = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    matrix = cosine_distances(vectors.astype(np.float64), vectors.astype(np.float64))
    expected = (matrix.sum() - np.trace(matrix)) / (300 * 299)
    assert mean_pairwise_distance(vectors) == pytest.approx(expected, abs=1e-9)


def test_a_run_embeds_each_text_once_and_scores_as_a_fresh_computation(tmp_path: Path) -> None:
    student = {"name": "head", "kind": "setfit", "model": MODEL, "params": {"body_training": "none"},
               "repeats": 2, "train_sizes": [2]}
    recipe = reference_recipe(tmp_path, [student])
    recipe = recipe.model_copy(update={"quality": recipe.quality.model_copy(update={"embedding_model": MODEL})})
    run_folder = RunFolder(tmp_path / "run")
    synthetic_dataset_folder(recipe, run_folder.dataset.root)
    dataset = synthetic_dataset(per_label=4)

    with measured_stage(run_folder.root, "generate"):
        assert write_quality(recipe, run_folder.dataset.root, embeddings=run_folder.embeddings) is not None
    with measured_stage(run_folder.root, "train"):
        trained = train_students(recipe, dataset, run_folder.root)
    with measured_stage(run_folder.root, "evaluate"):
        results = run_evaluation(recipe, run_folder.root, teacher=AnswerKeyTeacher())
    assert {run.run.data for run in trained} == {"synthetic", "human"} and len(trained) == 8

    stages = RunStats.load(run_folder.stats).stages
    computed = {name: stage.embedded_texts.computed for name, stage in stages.items() if stage.embedded_texts}
    stored = EmbeddingStore(run_folder.embeddings)
    distinct = len(stored)
    stored.close()
    # Every text embedded once over the whole run: the stages' computations add up to the store's rows.
    assert sum(computed.values()) == distinct and computed["generate"] > 0
    # Training reuses the quality report's synthetic texts; the human texts and the test texts are new.
    assert stages["train"].embedded_texts.reused >= len(dataset["train"])
    assert stages["evaluate"].embedded_texts.reused > 0

    # The scores equal a student's own fresh computation, with no store and no table.
    head = results.rows[[row.model for row in results.rows].index("head")]
    fresh = Student.load(run_folder.student("head").root)
    english = [row for row in sib200_rows("en", "test")]
    table = Embedder(EmbeddingSpec(MODEL, 128), store=run_folder.embeddings).table(row["text"] for row in english)
    cached = Student.load(run_folder.student("head").root)
    cached.embedding_table = table
    sample = [row["text"] for row in english[:20]]
    assert np.array_equal(fresh.predict_proba(sample, ["en"] * 20), cached.predict_proba(sample, ["en"] * 20))
    assert head.role == "student" and 0 <= head.macro_f1 <= 1

    # Evaluated again: nothing is embedded anew, and the results are the same.
    before = embeddings.snapshot()
    again = run_evaluation(recipe, run_folder.root, teacher=AnswerKeyTeacher())
    assert embeddings.counts_since(before)["computed"] == 0
    assert [row.macro_f1 for row in again.rows] == [row.macro_f1 for row in results.rows]
