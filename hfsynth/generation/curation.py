"""Curation of generated samples, keeping a record of every dropped sample and why.

Filters, in order: teacher chatter (the teacher talking about the task instead of writing a text), test-set overlap (a
long word n-gram shared with a real test text: a leak that would inflate every score), length bounds, language
identification, exact duplicates (normalised text), copies of real seed examples, near duplicates (character 3-gram
Jaccard similarity within a language, :mod:`hfsynth.generation.near_duplicates`), and optionally the teacher's own check
that a text fits its label (applied by the generation stage, which owns the teacher).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pycountry

from hfsynth.generation.near_duplicates import NearDuplicateIndex, index_of, shingle_sets
from hfsynth.generation.prompts import DIVERSITY_INSTRUCTIONS, GenerationRequest, generation_prompt
from hfsynth.generation.samples import DropRecord, Sample
from hfsynth.recipe.schema import CurationConfig, Recipe
from hfsynth.text_measures import normalize


@dataclass
class CurationResult:
    kept: list[Sample]
    dropped: list[DropRecord]

    def drop_counts(self) -> Counter[str]:
        return Counter(record.reason for record in self.dropped)


def word_count(text: str) -> int:
    """Words, with an estimate for scripts written without spaces (Thai, Chinese, Japanese...)."""
    words = len(text.split())
    if words and len(text) / words > 20:
        return max(words, len(text) // 5)
    return words


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


# --- teacher chatter and test-set overlap ----------------------------------------------------------------------------

#: The teacher talking about its answer or the task instead of writing a text. English only: teachers chatter in
#: English whatever language they were asked for. Each pattern needs a task word (text, sentence, example...) or a
#: phrase real texts do not use, so that "The following day the team won" stays a text.
_TASK_NOUN = r"(?:texts?|sentences?|paragraphs?|examples?|samples?|reviews?|comments?|items?)"
# Narrower: "the second sentence" of a law, "3 items" in a review are real texts.
_WRITING_NOUN = r"(?:texts?|paragraphs?|examples?|samples?)"
_CHATTER_PATTERNS = tuple(re.compile(pattern, re.IGNORECASE) for pattern in (
    rf"\b(?:here|below) (?:is|are)\b.*\b{_TASK_NOUN}\b",
    rf"\b{_TASK_NOUN}\b.*\b(?:is|are) (?:here|below)\b",
    rf"\bthe following\b(?:\s+\w+){{0,2}}\s+{_TASK_NOUN}\b",
    rf"\blist of\b.*\b{_TASK_NOUN}\b",
    r"\b(?:two|three|four|five|six|seven|eight|nine|ten|\d+) (?:different |short |new )?"
    r"(?:texts|sentences|paragraphs|examples|samples)\b",
    rf"\b(?:the|this|these) (?:first|second|third|next|last|above|previous|given) {_WRITING_NOUN}\b",
    rf"\b(?:this|the above|each) {_WRITING_NOUN} (?:is|are|was|continues|shows|describes)\b",
    rf"\b{_TASK_NOUN} ?\d+\s*:",  # "Text 2:", "Sentence 1:" inside a text
    r"\b(?:texts|sentences|paragraphs|examples|samples)\s*:",  # "Sentences: ..."
    rf"\b{_WRITING_NOUN} about\b",
    r"\bas requested\b",
    r"\bi hope (?:this|these|that) (?:helps?|is|are|meets?|fits?|works?)\b",
    r"^\s*note\s*:",
    r"\b(?:i will|i'll|let me|i can) (?:revise|rewrite|write|generate|provide|create|give)\b",
    r"\bi (?:have|'ve) (?:now )?(?:rewritten|written|generated|created|provided|revised)\b",
    r"\b(?:adhering to|according to|following|follow) the (?:task|instructions?|prompt|label|guidelines)\b",
))
#: Word n-gram length for "echoes the instructions".
ECHO_NGRAM = 3


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    return {tuple(words[index : index + n]) for index in range(len(words) - n + 1)}


def instruction_texts(recipe: Recipe) -> list[str]:
    """What the teacher is told in generation prompts, without the real seed examples (a text that copies a seed is
    a seed copy, not chatter): one prompt per label, each diversity instruction, and the base-model header; with
    ``generation.structured: json`` the JSON request too."""

    texts = list(DIVERSITY_INSTRUCTIONS)
    for label in recipe.label_names:
        for language in recipe.languages:
            request = GenerationRequest(label, language, recipe.generation.samples_per_call, call_index=0)
            for structured in {False, recipe.generation.structured == "json"}:
                prompt = generation_prompt(recipe, request, structured)
                texts += [content for _, content in prompt.messages] + [prompt.completion]
    return texts


@dataclass(frozen=True)
class ChatterCheck:
    """Finds texts that are the teacher talking about the task: meta-talk, echoed instructions, a bare label name."""

    label_names: frozenset[str]  # normalised
    instruction_ngrams: frozenset[tuple[str, ...]]
    echo_share: float  # a text whose word 3-grams come from the instructions at least this often is an echo

    @classmethod
    def for_task(cls, label_names: Sequence[str], instructions: Sequence[str], echo_share: float) -> ChatterCheck:
        ngrams = frozenset(ngram for text in instructions for ngram in word_ngrams(text, ECHO_NGRAM))
        return cls(frozenset(normalize(name) for name in label_names), ngrams, echo_share)

    def why(self, text: str) -> str | None:
        """Why ``text`` is chatter (the drop record's detail), or ``None`` when it is a text."""
        normalized = normalize(text)
        bare = re.sub(r"^(?:label|topic|category|sentiment)\s+", "", normalized)
        if bare in self.label_names:
            return "a label name only"
        for pattern in _CHATTER_PATTERNS:
            match = pattern.search(text)
            if match:
                return f"talks about the task: {match.group(0)[:40]!r}"
        ngrams = word_ngrams(text, ECHO_NGRAM)
        if ngrams and self.instruction_ngrams:
            share = len(ngrams & self.instruction_ngrams) / len(ngrams)
            if share >= self.echo_share:
                return f"echoes the instructions ({share:.0%} of its word {ECHO_NGRAM}-grams)"
        return None


class TestOverlap:
    """The word n-grams of the real test texts: a synthetic text sharing one (or equal to a test text) leaks it."""

    __test__ = False  # not a pytest class

    def __init__(self, test_texts: Sequence[str], n: int) -> None:
        self.n = n
        self.whole = {normalize(text) for text in test_texts}
        self.ngrams = {ngram for text in test_texts for ngram in word_ngrams(text, n)}

    def shared(self, text: str) -> str | None:
        """The first n-gram ``text`` shares with a test text (the whole text when it equals one), else ``None``."""
        normalized = normalize(text)
        if normalized in self.whole:
            return normalized
        words = normalized.split()
        for index in range(len(words) - self.n + 1):
            if tuple(words[index : index + self.n]) in self.ngrams:
                return " ".join(words[index : index + self.n])
        return None


def count_test_overlap(texts: Sequence[str], test_texts: Sequence[str], n: int) -> int:
    """How many of ``texts`` share a word ``n``-gram with (or equal) a test text."""
    overlap = TestOverlap(test_texts, n)
    return sum(overlap.shared(text) is not None for text in texts)


# --- the filters in order ------------------------------------------------------------------------------------------


def curate(
    samples: Sequence[Sample],
    config: CurationConfig,
    seed_texts: Sequence[str] = (),
    test_texts: Sequence[str] = (),
    chatter: ChatterCheck | None = None,
    validation_texts: Sequence[str] = (),
) -> CurationResult:
    """Apply the filters in order (:class:`Curator` over all of ``samples`` at once)."""
    return Curator(config, seed_texts, test_texts, chatter, validation_texts).add(samples)


class Curator:
    """Curation that grows with its input, round after round. ``test_texts``: every real test text (for
    ``test_overlap``); ``chatter``: the task's check (default: meta-talk patterns only, no instructions, no label
    names); ``validation_texts``: the real texts error-driven generation scores its steering student on
    (``validation_overlap``, the same n-gram check).

    Every filter decides a sample from it and the samples before it only (duplicates: the first one stays), so
    ``add``-ing a round's new samples, checked against what is already kept, gives exactly what curating the whole
    input again would: the kept samples in input order, the drops grouped by filter as a single pass groups them.
    """

    def __init__(self, config: CurationConfig, seed_texts: Sequence[str] = (), test_texts: Sequence[str] = (),
                 chatter: ChatterCheck | None = None, validation_texts: Sequence[str] = ()) -> None:
        self.config = config
        self.chatter = chatter or ChatterCheck(frozenset(), frozenset(), config.instruction_echo_share)
        use_overlap = test_texts and config.drop_test_overlap
        self.overlap = TestOverlap(test_texts, config.test_overlap_ngram) if use_overlap else None
        # Always on: a validation text copied into the data would make the feedback rounds' scores meaningless.
        self.validation = TestOverlap(validation_texts, config.test_overlap_ngram) if validation_texts else None
        use_seeds = config.remove_seed_copies and seed_texts
        self.seeds = index_of([normalize(text) for text in seed_texts], config.near_duplicate_threshold) \
            if use_seeds else None
        self.seen = 0  # samples added so far
        self.kept: list[Sample] = []
        self._exact: dict[str, Sample] = {}
        self._near: dict[str, NearDuplicateIndex] = {}  # per language: a text is compared within its language
        self._drops: dict[str, list[DropRecord]] = {"filters": [], "duplicate": [], "seed_copy": [],
                                                    "near_duplicate": []}

    def add(self, samples: Sequence[Sample]) -> CurationResult:
        """Curate ``samples`` after those added before; returns the result for everything added so far."""
        self.seen += len(samples)
        passed = [sample for sample in samples if self._passes_filters(sample)]
        if self.config.dedup:
            passed = self._drop_exact_duplicates(passed)
        if passed and (self.seeds is not None or self.config.dedup):
            shingles = shingle_sets([normalize(sample.text) for sample in passed])
            if self.seeds is not None:
                passed, shingles = self._drop_similar(passed, shingles, "seed_copy", self.seeds.closest(shingles))
            if self.config.dedup:
                passed, shingles = self._drop_near_duplicates(passed, shingles)
        self.kept += passed
        return CurationResult(list(self.kept), [record for drops in self._drops.values() for record in drops])

    def _passes_filters(self, sample: Sample) -> bool:
        config, drop = self.config, self._drops["filters"]
        words = word_count(sample.text)
        chatter_detail = self.chatter.why(sample.text) if config.drop_teacher_chatter else None
        shared = self.overlap.shared(sample.text) if self.overlap else None
        shared_validation = self.validation.shared(sample.text) if self.validation else None
        if chatter_detail:
            drop.append(DropRecord.of(sample, "teacher_chatter", chatter_detail))
        elif shared:
            drop.append(DropRecord.of(sample, "test_overlap", f"shares {shared[:60]!r} with a test text"))
        elif shared_validation:
            drop.append(DropRecord.of(sample, "validation_overlap",
                                      f"shares {shared_validation[:60]!r} with a feedback validation text"))
        elif words < config.min_words:
            drop.append(DropRecord.of(sample, "too_short", f"{words} words < {config.min_words}"))
        elif words > config.max_words:
            drop.append(DropRecord.of(sample, "too_long", f"{words} words > {config.max_words}"))
        elif config.language_id and supports_language_id(sample.language):
            detected, probability = identify_language(sample.text)
            # Only a confident verdict for another language drops a sample: short texts fool any identifier.
            if detected != _alpha2(sample.language) and probability >= config.min_language_confidence:
                drop.append(DropRecord.of(sample, "wrong_language", f"{detected} ({probability:.2f})"))
            else:
                return True
        else:
            return True
        return False

    def _drop_exact_duplicates(self, samples: list[Sample]) -> list[Sample]:
        kept = []
        for sample in samples:
            first = self._exact.setdefault(normalize(sample.text), sample)
            if first is sample:
                kept.append(sample)
            else:
                detail = "same text, other label" if first.label != sample.label else "same text"
                self._drops["duplicate"].append(DropRecord.of(sample, "duplicate", detail))
        return kept

    def _drop_similar(self, samples: list[Sample], shingles: list[np.ndarray], reason: str,
                      similarities: Sequence[float | None]) -> tuple[list[Sample], list[np.ndarray]]:
        """Drop the samples with a similarity (to a seed text, to a sample kept before them), for ``reason``."""
        kept, kept_shingles = [], []
        for sample, sample_shingles, similarity in zip(samples, shingles, similarities, strict=True):
            if similarity is None:
                kept.append(sample)
                kept_shingles.append(sample_shingles)
            else:
                self._drops[reason].append(DropRecord.of(sample, reason, f"similarity {similarity:.2f}"))
        return kept, kept_shingles

    def _drop_near_duplicates(self, samples: list[Sample],
                              shingles: list[np.ndarray]) -> tuple[list[Sample], list[np.ndarray]]:
        """Greedy: keep a sample unless it is too similar to one of its language kept before it (the first of a
        cluster survives)."""
        similarities: list[float | None] = [None] * len(samples)
        for language in dict.fromkeys(sample.language for sample in samples):
            positions = [i for i, sample in enumerate(samples) if sample.language == language]
            index = self._near.get(language)
            if index is None:
                index = self._near[language] = NearDuplicateIndex(self.config.near_duplicate_threshold)
            for position, similarity in zip(positions, index.add_unless_near([shingles[i] for i in positions]),
                                            strict=True):
                similarities[position] = similarity
        return self._drop_similar(samples, shingles, "near_duplicate", similarities)


def apply_self_check(samples: Sequence[Sample], predicted: Sequence[str | None]) -> CurationResult:
    """Drop samples the teacher itself would label differently (unreadable verdicts keep the sample)."""
    kept, dropped = [], []
    for sample, label in zip(samples, predicted, strict=True):
        if label is not None and label != sample.label:
            dropped.append(DropRecord.of(sample, "self_check", f"teacher says {label!r}"))
        else:
            kept.append(sample)
    return CurationResult(kept, dropped)
