"""Measures of a set of texts that the quality report (:mod:`hfsynth.quality`) compares between synthetic and real
data: lexical diversity (distinct-n, compression ratio), semantic diversity and coverage over sentence embeddings
(:mod:`hfsynth.embeddings` computes them); and the normal form every stage compares texts in (:func:`normalize`)."""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence

import numpy as np

from hfsynth.recipe.schema import Recipe


def normalize(text: str) -> str:
    """Case-, accent-form-, punctuation- and whitespace-insensitive form used to find duplicates."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


# --- lexical measures ------------------------------------------------------------------------------------------------


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique word n-grams over all word n-grams of ``texts`` (normalised words); ``None`` without any n-gram."""
    ngrams: list[tuple[str, ...]] = []
    for text in texts:
        words = normalize(text).split()
        ngrams += [tuple(words[index : index + n]) for index in range(len(words) - n + 1)]
    return len(set(ngrams)) / len(ngrams) if ngrams else None


def compression_ratio(texts: Sequence[str]) -> float | None:
    """Raw size / zlib-compressed size of the texts joined by newlines: repeated phrasing compresses well."""
    raw = "\n".join(texts).encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 9)) if raw else None


def lexical(texts: Sequence[str]) -> dict[str, float | None]:
    return {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
            "compression_ratio": compression_ratio(texts)}


# --- semantic measures -----------------------------------------------------------------------------------------------


def cosine_distances(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances of L2-normalised embeddings."""
    return np.clip(1.0 - left @ right.T, 0.0, 2.0)


def mean_pairwise_distance(embeddings: np.ndarray) -> float | None:
    """Mean cosine distance over all pairs of different unit vectors; ``None`` for fewer than two texts.

    Linear, not an n x n matrix: the pairs' similarities sum to |sum of the vectors|^2 minus each vector's own."""
    count = len(embeddings)
    if count < 2:
        return None
    vectors = embeddings.astype(np.float64)
    total = vectors.sum(axis=0)
    similarity = (float(total @ total) - float((vectors * vectors).sum())) / (count * (count - 1))
    return 1.0 - similarity


def nearest_distances(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each query, the cosine distance to its nearest candidate."""
    return cosine_distances(queries, candidates).min(axis=1)


def coverage(queries: np.ndarray, candidates: np.ndarray, distance: float) -> float | None:
    """The share of ``queries`` whose nearest candidate lies within ``distance``."""
    if len(queries) == 0 or len(candidates) == 0:
        return None
    return float((nearest_distances(queries, candidates) <= distance).mean())


def leave_one_out_nearest(embeddings: np.ndarray) -> np.ndarray:
    """For each text, the distance to its nearest *other* text of the same set."""
    distances = cosine_distances(embeddings, embeddings)
    np.fill_diagonal(distances, np.inf)
    return distances.min(axis=1)


def embedding_model(recipe: Recipe) -> str:
    """The recipe's choice, else the first SetFit student's body, else an embedded model fitting the languages."""
    if recipe.quality.embedding_model:
        return recipe.quality.embedding_model
    setfit = next((student.model for student in recipe.students if student.kind == "setfit"), None)
    if setfit:
        return setfit
    return "all-minilm-l6-v2" if set(recipe.languages) == {"en"} else "multilingual-e5-small"
