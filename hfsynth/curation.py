"""Curation of generated samples, keeping a record of every dropped sample and why.

Filters, in order: length bounds, language identification, exact duplicates (normalised text), copies of real seed
examples, near duplicates (character 3-gram Jaccard similarity), and optionally the teacher's own check that a text
fits its label (applied by the generation stage, which owns the teacher).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pycountry
from sklearn.feature_extraction.text import HashingVectorizer

from hfsynth.recipe import CurationConfig


@dataclass(frozen=True)
class Sample:
    text: str
    label: str
    language: str
    prompt_id: str


@dataclass(frozen=True)
class DropRecord:
    text: str
    label: str
    language: str
    prompt_id: str
    reason: str  # too_short | too_long | wrong_language | duplicate | seed_copy | near_duplicate | self_check
    detail: str = ""

    @classmethod
    def of(cls, sample: Sample, reason: str, detail: str = "") -> DropRecord:
        return cls(**asdict(sample), reason=reason, detail=detail)


@dataclass
class CurationResult:
    kept: list[Sample]
    dropped: list[DropRecord]

    def drop_counts(self) -> Counter[str]:
        return Counter(record.reason for record in self.dropped)


def normalize(text: str) -> str:
    """Case-, accent-form-, punctuation- and whitespace-insensitive form used to find duplicates."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def word_count(text: str) -> int:
    """Words, with an estimate for scripts written without spaces (Thai, Chinese, Japanese...)."""
    words = len(text.split())
    if words and len(text) / words > 20:
        return max(words, len(text) // 5)
    return words


_VECTORIZER = HashingVectorizer(analyzer="char", ngram_range=(3, 3), binary=True, norm=None, alternate_sign=False,
                                n_features=2**20)


def jaccard_matrix(left: Sequence[str], right: Sequence[str]) -> np.ndarray:
    """Pairwise Jaccard similarity of the character 3-gram sets of normalised texts."""
    a = _VECTORIZER.transform([normalize(text) for text in left])
    b = _VECTORIZER.transform([normalize(text) for text in right])
    intersection = (a @ b.T).toarray()
    sizes_a = np.asarray(a.sum(axis=1)).ravel()
    sizes_b = np.asarray(b.sum(axis=1)).ravel()
    union = sizes_a[:, None] + sizes_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection, dtype=float), where=union > 0)


@lru_cache(maxsize=1)
def _language_identifier():  # noqa: ANN202 - py3langid has no public type for it
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _alpha2(code: str) -> str | None:
    """py3langid speaks ISO 639-1; recipes may use 639-3 ('swh' -> 'sw' through its macrolanguage)."""
    if len(code) == 2:
        return code
    language = pycountry.languages.get(alpha_3=code)
    if language is not None and hasattr(language, "alpha_2"):
        return language.alpha_2
    macro = {"swh": "sw", "azj": "az", "zsm": "ms", "arb": "ar", "pes": "fa", "ekk": "et", "lvs": "lv"}
    return macro.get(code)


def supports_language_id(code: str) -> bool:
    alpha2 = _alpha2(code)
    return alpha2 is not None and alpha2 in _language_identifier().nb_classes


def identify_language(text: str) -> tuple[str, float]:
    language, probability = _language_identifier().classify(text)
    return language, float(probability)


def curate(samples: Sequence[Sample], config: CurationConfig, seed_texts: Sequence[str] = ()) -> CurationResult:
    kept: list[Sample] = []
    dropped: list[DropRecord] = []

    for sample in samples:
        words = word_count(sample.text)
        if words < config.min_words:
            dropped.append(DropRecord.of(sample, "too_short", f"{words} words < {config.min_words}"))
        elif words > config.max_words:
            dropped.append(DropRecord.of(sample, "too_long", f"{words} words > {config.max_words}"))
        elif config.language_id and supports_language_id(sample.language):
            detected, probability = identify_language(sample.text)
            # Only a confident verdict for another language drops a sample: short texts fool any identifier.
            if detected != _alpha2(sample.language) and probability >= config.min_language_confidence:
                dropped.append(DropRecord.of(sample, "wrong_language", f"{detected} ({probability:.2f})"))
            else:
                kept.append(sample)
        else:
            kept.append(sample)

    if config.dedup:
        kept, dropped_exact = _drop_exact_duplicates(kept)
        dropped += dropped_exact
    if config.remove_seed_copies and seed_texts and kept:
        similarity = jaccard_matrix([s.text for s in kept], seed_texts).max(axis=1)
        copies = similarity >= config.near_duplicate_threshold
        dropped += [DropRecord.of(s, "seed_copy", f"similarity {sim:.2f}")
                    for s, sim, copy in zip(kept, similarity, copies, strict=True) if copy]
        kept = [s for s, copy in zip(kept, copies, strict=True) if not copy]
    if config.dedup and kept:
        kept, dropped_near = _drop_near_duplicates(kept, config.near_duplicate_threshold)
        dropped += dropped_near
    return CurationResult(kept, dropped)


def _drop_exact_duplicates(samples: list[Sample]) -> tuple[list[Sample], list[DropRecord]]:
    seen: dict[str, Sample] = {}
    kept, dropped = [], []
    for sample in samples:
        key = normalize(sample.text)
        if key in seen:
            first = seen[key]
            detail = "same text, other label" if first.label != sample.label else "same text"
            dropped.append(DropRecord.of(sample, "duplicate", detail))
        else:
            seen[key] = sample
            kept.append(sample)
    return kept, dropped


def _drop_near_duplicates(samples: list[Sample], threshold: float) -> tuple[list[Sample], list[DropRecord]]:
    """Greedy: keep a sample unless it is too similar to one kept before it (the first of a cluster survives)."""
    similarity = jaccard_matrix([s.text for s in samples], [s.text for s in samples])
    np.fill_diagonal(similarity, 0.0)
    kept_indices: list[int] = []
    dropped = []
    for index, sample in enumerate(samples):
        closest = max(kept_indices, key=lambda kept: similarity[index, kept], default=None)
        if closest is not None and similarity[index, closest] >= threshold:
            dropped.append(DropRecord.of(sample, "near_duplicate", f"similarity {similarity[index, closest]:.2f}"))
        else:
            kept_indices.append(index)
    return [samples[i] for i in kept_indices], dropped


def apply_self_check(samples: Sequence[Sample], predicted: Sequence[str | None]) -> CurationResult:
    """Drop samples the teacher itself would label differently (unreadable verdicts keep the sample)."""
    kept, dropped = [], []
    for sample, label in zip(samples, predicted, strict=True):
        if label is not None and label != sample.label:
            dropped.append(DropRecord.of(sample, "self_check", f"teacher says {label!r}"))
        else:
            kept.append(sample)
    return CurationResult(kept, dropped)
