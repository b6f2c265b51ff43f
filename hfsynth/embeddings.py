"""Sentence embeddings of a pretrained model, each (model, text) computed once per run and the same in any batch.

The quality report, head-only SetFit students (``body_training: none``, the feedback's steering student among them),
the human-reference runs of such students and in-context students that pick the nearest examples all embed texts
with a pretrained model, often the same model and the same texts. They share one store per run folder,
``cache/embeddings.sqlite``: a text is embedded the first time any of them needs it and read back after.

Reading back must give what a fresh computation would, or a resumed run could score differently from an
uninterrupted one. Padding is what makes a text's embedding depend on the texts beside it in a batch (multilingual-e5-
small: 1,544 of 2,000 vectors moved, by up to 1.4e-7; ``benchmarks/embedding_batches.py``), so :class:`Embedder`
encodes texts in batches of a single token length, where nothing is padded: then neither the batch's size nor its
other texts nor the thread count change a bit (measured on e5-small with 1 and 2 threads, batches of 1 to 109 texts;
``tests/test_embeddings.py`` keeps checking it).

The store is written by one process at a time, the driver (the run folder's lock). Units on a cluster get an
:class:`EmbeddingTable`, the vectors of the texts they will need, computed by the driver beforehand: SQLite is not
safe on the network file systems a cluster shares.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from hfsynth.cache import call_key
from hfsynth.embedded import base_model_id, resolve_model
from hfsynth.errors import HfsynthError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

#: Texts of one token length encoded together (any size gives the same bits; this one keeps the batches fast).
BATCH_SIZE = 64
#: Texts tokenized at once to find their lengths.
TOKENIZE_CHUNK = 4096

#: Texts this process has embedded ("computed") and found already embedded ("reused"), for the run's stage stats.
EMBEDDED: Counter[str] = Counter()
_counter_lock = threading.Lock()


def _count(computed: int, reused: int) -> None:
    with _counter_lock:
        EMBEDDED.update(computed=computed, reused=reused)


@dataclass(frozen=True)
class EmbeddingSpec:
    """What a text's embedding depends on beside the text: the model and how many tokens it reads."""

    model: str
    #: Tokens per text (longer texts are truncated); None: the model's own limit.
    max_length: int | None = None


@dataclass
class EmbeddingTable:
    """Embeddings of known texts, one row each: what the driver computed for a cluster's units."""

    rows: dict[str, int] = field(default_factory=dict)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, text: str) -> np.ndarray | None:
        row = self.rows.get(text)
        return None if row is None else self.vectors[row]


#: The tables of one stage's units, per embedding spec (a student embedding with none finds none).
EmbeddingTables = Mapping[EmbeddingSpec | None, EmbeddingTable]


class EmbeddingStoreError(HfsynthError):
    """The run's embedding store cannot be read or written."""


class EmbeddingStore:
    """``key -> float32 vector`` in SQLite; each batch of new vectors is committed at once, so a kill loses at most
    the batch being computed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        except (OSError, sqlite3.Error) as error:
            raise EmbeddingStoreError(
                f"{path}: cannot open the run's embedding store ({error}): delete it and re-run, the embeddings it "
                "held are computed again") from None

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            chunk = keys[start: start + 500]
            query = f"SELECT key, vector FROM embeddings WHERE key IN ({','.join('?' * len(chunk))})"
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in self._db.execute(query, chunk))
        return found

    def put(self, vectors: Mapping[str, np.ndarray]) -> None:
        rows = [(key, np.asarray(vector, dtype=np.float32).tobytes()) for key, vector in vectors.items()]
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO embeddings (key, vector) VALUES (?, ?)", rows)
        self._db.execute("COMMIT")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _model_identity(name: str) -> str:
    """The model as a key part: its Hub id (embedded names included), or a local folder's absolute path."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else base_model_id(name)


class Embedder:
    """The embeddings of ``spec``'s model for any texts: from ``known``, then from the store at ``store``, and the
    rest computed (canonically: see the module docstring) and added to the store.

    ``model``: an already loaded copy of the model to compute with (a SetFit student's body); otherwise it is loaded
    on the CPU when a text needs computing, so every machine computes alike and the students keep any GPU.
    ``normalize``: :meth:`encode` scales each vector to unit length (the store and tables keep them as computed).
    """

    def __init__(self, spec: EmbeddingSpec, store: Path | None = None, known: EmbeddingTable | None = None,
                 model: SentenceTransformer | None = None, normalize: bool = False) -> None:
        self.spec = spec
        self.normalize = normalize
        self.model_id = base_model_id(spec.model)
        self.store_path = store
        self.known = known
        #: What this embedder read or computed so far, without a table (a table already holds its texts).
        self._seen: dict[str, np.ndarray] = {}
        self._model = model
        self._identity = _model_identity(spec.model)

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_model(self.spec.model), device="cpu")
        if self.spec.max_length is not None:
            self._model.max_seq_length = self.spec.max_length
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, float32."""
        if not texts:
            known = self.known.vectors.shape[1] if self.known is not None and len(self.known) else None
            return np.zeros((0, known or self.model.get_embedding_dimension() or 0), dtype=np.float32)
        vectors = self._vectors(list(dict.fromkeys(texts)))
        matrix = np.stack([vectors[text] for text in texts]).astype(np.float32, copy=False)
        if self.normalize:
            matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return matrix

    def table(self, texts: Iterable[str]) -> EmbeddingTable:
        """The vectors of ``texts`` as a table for units to look up."""
        distinct = list(dict.fromkeys(texts))
        vectors = self._vectors(distinct)
        if not distinct:
            return EmbeddingTable()
        return EmbeddingTable({text: row for row, text in enumerate(distinct)},
                              np.stack([vectors[text] for text in distinct]).astype(np.float32, copy=False))

    def _vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for text in texts:
            vector = self.known.get(text) if self.known is not None else self._seen.get(text)
            if vector is not None:
                found[text] = vector
        missing = [text for text in texts if text not in found]
        if missing:
            fresh = self._from_store_or_computed(missing)
            if self.known is None:  # the quality report asks for the same texts per label, language and set
                self._seen |= fresh
            found |= fresh
        _count(computed=0, reused=len(texts) - len(missing))
        return found

    def _from_store_or_computed(self, texts: list[str]) -> dict[str, np.ndarray]:
        keys, lengths = self._keys_and_lengths(texts)
        store = EmbeddingStore(self.store_path) if self.store_path is not None else None
        try:
            stored = store.get(list(keys.values())) if store is not None else {}
            found = {text: stored[keys[text]] for text in texts if keys[text] in stored}
            todo = [text for text in texts if text not in found]
            _count(computed=0, reused=len(found))
            if todo:
                found |= self._compute(todo, keys, lengths, store)
        finally:
            if store is not None:
                store.close()
        return found

    def _prompt(self) -> str | None:
        model = self.model
        return model.prompts.get(model.default_prompt_name) if model.default_prompt_name else None

    def _keys_and_lengths(self, texts: list[str]) -> tuple[dict[str, str], dict[str, int]]:
        """Each text's store key and token length (prompt included, after truncation). A truncated text's key
        names the limit; any other text's does not, so embedders of one model with other limits share it."""
        model, prompt = self.model, self._prompt()
        limit = model.max_seq_length
        keys: dict[str, str] = {}
        lengths: dict[str, int] = {}
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            chunk = texts[start: start + TOKENIZE_CHUNK]
            counts = model.preprocess(chunk, prompt=prompt)["attention_mask"].sum(dim=1).tolist()
            for text, length in zip(chunk, counts, strict=True):
                lengths[text] = int(length)
                cut = limit if limit is not None and length >= limit else None
                keys[text] = call_key(model=self._identity, prompt=prompt, text=text, truncated_at=cut)
        return keys, lengths

    def _compute(self, texts: list[str], keys: dict[str, str], lengths: dict[str, int],
                 store: EmbeddingStore | None) -> dict[str, np.ndarray]:
        by_length: dict[int, list[str]] = defaultdict(list)
        for text in sorted(texts):
            by_length[lengths[text]].append(text)
        batches = [group[start: start + BATCH_SIZE] for _, group in sorted(by_length.items())
                   for start in range(0, len(group), BATCH_SIZE)]
        logger.info("embedding %d texts with %s", len(texts), self.model_id)
        computed: dict[str, np.ndarray] = {}
        prompt = self._prompt()
        with tqdm(total=len(texts), desc=f"embedding with {self.model_id}", unit="text", leave=False) as bar:
            for batch in batches:
                vectors = self.model.encode(batch, batch_size=len(batch), prompt=prompt, convert_to_numpy=True,
                                            normalize_embeddings=False, show_progress_bar=False)
                fresh = dict(zip(batch, np.asarray(vectors, dtype=np.float32), strict=True))
                if store is not None:
                    store.put({keys[text]: vector for text, vector in fresh.items()})
                computed |= fresh
                _count(computed=len(batch), reused=0)
                bar.update(len(batch))
        return computed


def counts_since(before: Mapping[str, int]) -> dict[str, int]:
    """Texts embedded and reused in this process since ``before`` (a copy of :data:`EMBEDDED`)."""
    with _counter_lock:
        return {name: EMBEDDED[name] - before.get(name, 0) for name in ("computed", "reused")}


def snapshot() -> dict[str, int]:
    with _counter_lock:
        return dict(EMBEDDED)

