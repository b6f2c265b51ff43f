"""Near duplicates in near-linear time: MinHash LSH over character 3-gram sets, every candidate verified exactly.

A text's 3-gram set is its hashed character 3-grams (the features curation always compared). Its MinHash signature
(datasketch, fixed seed: the same signatures on any machine) is cut into BANDS bands of ROWS values; texts sharing a
band are candidates (banding is done on numpy arrays, a batch at a time: datasketch's dict-based index holds ~12 KB
per text, too much for 100,000). Candidates whose signatures agree too rarely to reach the threshold are skipped, the
rest compared by their exact Jaccard similarity. A reported similarity is therefore exact (no false drop); only
recall is probabilistic: a pair at exactly the threshold 0.8 shares no band with probability
(1 - 0.8^ROWS)^BANDS, about 5e-8, and the estimate filter loses it with probability under 1e-5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasketch import MinHash
from sklearn.feature_extraction.text import HashingVectorizer

#: MinHash permutations, and the LSH bands x rows they are cut into (BANDS * ROWS <= NUM_PERM).
NUM_PERM, BANDS, ROWS = 128, 32, 4
#: The MinHash seed: fixed, so that the same texts give the same candidates everywhere.
SEED = 1
#: Candidates whose MinHash estimate is this far under the threshold are not verified: at 128 permutations the
#: estimate's standard deviation is at most 0.045 near 0.8, so 0.2 is over 4 of them (a miss below 1e-5, and the
#: pair still needs its exact similarity >= threshold to count).
ESTIMATE_MARGIN = 0.2

_VECTORIZER = HashingVectorizer(analyzer="char", ngram_range=(3, 3), binary=True, norm=None, alternate_sign=False,
                                n_features=2**20)
# hashfunc: the features are already hashes (murmurhash3); datasketch pre-mixes them before its permutations.
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=int)


def shingle_sets(normalized_texts: Sequence[str]) -> list[np.ndarray]:
    """Each text's hashed character 3-grams, as a sorted array of unique feature indices."""
    if not normalized_texts:
        return []
    matrix = _VECTORIZER.transform(normalized_texts).tocsr()
    matrix.sort_indices()
    indices = matrix.indices.astype(np.int32)
    return [indices[start:end] for start, end in zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)]


def jaccard(left: np.ndarray, right: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle sets (0 when both are empty)."""
    shared = np.intersect1d(left, right, assume_unique=True).size
    union = left.size + right.size - shared
    return shared / union if union else 0.0


def signatures(shingle_sets_: Sequence[np.ndarray]) -> np.ndarray:
    """The MinHash signature of each shingle set, one row each (uint32; an empty set's row is all maximal)."""
    rows = np.empty((len(shingle_sets_), NUM_PERM), dtype=np.uint32)
    minhash = _TEMPLATE.copy()  # one object, cleared for each set: building one per set costs more than hashing
    for row, shingles in enumerate(shingle_sets_):
        minhash.clear()
        minhash.update_batch(shingles)
        rows[row] = minhash.hashvalues
    return rows


def band_keys(rows: np.ndarray) -> np.ndarray:
    """One 64-bit key per band of each signature (a collision only adds a candidate, checked exactly)."""
    bands = rows[:, : BANDS * ROWS].reshape(len(rows), BANDS, ROWS).astype(np.uint64)
    keys = np.zeros((len(rows), BANDS), dtype=np.uint64)
    for column in range(ROWS):
        keys = (keys * np.uint64(0x9E3779B97F4A7C15)) ^ bands[:, :, column]
    return keys


def candidate_pairs(keys: np.ndarray, first_new: int) -> np.ndarray:
    """Pairs ``(earlier, later)`` of rows sharing a band key, ``later >= first_new`` (the rows being added), sorted."""
    found = []
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        distance = 1
        while distance < len(order):
            same = np.flatnonzero(sorted_keys[distance:] == sorted_keys[:-distance])
            if not same.size:
                break
            found.append(np.stack([order[same], order[same + distance]], axis=1))
            distance += 1
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    pairs = pairs[pairs[:, 1] >= first_new]
    return np.unique(pairs, axis=0)


class NearDuplicateIndex:
    """Shingle sets added so far, asked for the most similar one at or above ``threshold``, a batch at a time."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._shingles: list[np.ndarray] = []
        self._signatures = np.empty((0, NUM_PERM), dtype=np.uint32)
        self._keys = np.empty((0, BANDS), dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._shingles)

    def add(self, batch: Sequence[np.ndarray]) -> None:
        """Add every set of ``batch``."""
        self._append(list(batch), signatures(batch))

    def closest(self, batch: Sequence[np.ndarray]) -> list[float | None]:
        """For each set of ``batch``: its largest exact similarity to an added set if it reaches the threshold, else
        ``None``. Nothing is added."""
        similar = self._similar_pairs(list(batch), signatures(batch), within_batch=False)
        best: list[float | None] = [None] * len(batch)
        for earlier, later, similarity in similar:
            position = later - len(self)
            if best[position] is None or similarity > best[position]:
                best[position] = similarity
        return best

    def add_unless_near(self, batch: Sequence[np.ndarray]) -> list[float | None]:
        """Greedy deduplication in order: a set is added unless it reaches the threshold with one added before it
        (earlier in the batch included); for each, ``None`` (added) or that largest similarity (not added)."""
        rows = signatures(batch)
        neighbours: dict[int, list[tuple[int, float]]] = {}
        for earlier, later, similarity in self._similar_pairs(list(batch), rows, within_batch=True):
            neighbours.setdefault(later - len(self), []).append((earlier, similarity))
        kept = np.zeros(len(batch), dtype=bool)
        verdicts: list[float | None] = []
        for position in range(len(batch)):
            # Added sets (below len(self)) are all kept; a batch member counts only if it was kept itself.
            similarities = [similarity for earlier, similarity in neighbours.get(position, [])
                            if earlier < len(self) or kept[earlier - len(self)]]
            verdicts.append(max(similarities) if similarities else None)
            kept[position] = not similarities
        self._append([shingles for shingles, keep in zip(batch, kept, strict=True) if keep], rows[kept])
        return verdicts

    def _similar_pairs(self, batch: list[np.ndarray], rows: np.ndarray,
                       within_batch: bool) -> list[tuple[int, int, float]]:
        """(earlier, later, exact similarity) of every candidate pair reaching the threshold, later in ``batch``
        (numbered after the added sets), earlier an added set (or, ``within_batch``, earlier in ``batch``); in a
        fixed order."""
        pairs = candidate_pairs(np.concatenate([self._keys, self._band_keys(batch, rows)]), len(self))
        if not within_batch:
            pairs = pairs[pairs[:, 0] < len(self)]
        if not len(pairs):
            return []
        every = np.concatenate([self._signatures, rows])
        agree = np.concatenate([(every[chunk[:, 0]] == every[chunk[:, 1]]).mean(axis=1)
                                for chunk in np.array_split(pairs, max(1, len(pairs) // 50_000))])
        shingles = self._shingles + batch
        similar = []
        for earlier, later in pairs[agree >= self.threshold - ESTIMATE_MARGIN].tolist():
            similarity = jaccard(shingles[earlier], shingles[later])
            if similarity >= self.threshold:
                similar.append((earlier, later, similarity))
        return similar

    def _band_keys(self, batch: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
        """The rows' band keys, numbered after the added sets; an empty set (similar to nothing) gets its number as
        every key, which no other row has, so that it is in no pair."""
        keys = band_keys(rows)
        empty = np.flatnonzero([shingles.size == 0 for shingles in batch])
        keys[empty] = (len(self) + empty).astype(np.uint64)[:, None]
        return keys

    def _append(self, batch: list[np.ndarray], rows: np.ndarray) -> None:
        self._keys = np.concatenate([self._keys, self._band_keys(batch, rows)])
        self._shingles += batch
        self._signatures = np.concatenate([self._signatures, rows])


def index_of(normalized_texts: Sequence[str], threshold: float) -> NearDuplicateIndex:
    """An index holding every one of ``normalized_texts`` (e.g. the real seed texts copies are checked against)."""
    index = NearDuplicateIndex(threshold)
    index.add(shingle_sets(normalized_texts))
    return index
