"""What generation makes: a :class:`Sample` per kept text, the stage's :class:`GenerationResult`, and the dataset
schema every synthetic (and human-reference) dataset is written with."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import datasets

from hfsynth.runs.records import FeedbackReport, TeacherTokens


@dataclass(frozen=True)
class Sample:
    """One synthetic text with its label and language."""

    text: str
    label: str
    language: str
    prompt_id: str  # the request it answers (provenance, in the dataset)
    round: int = 0  # the feedback round that asked for it (0: the first pass and its top-ups)


@dataclass(frozen=True)
class DropRecord:
    text: str
    label: str
    language: str
    prompt_id: str
    # teacher_chatter | test_overlap | validation_overlap | too_short | too_long | wrong_language | duplicate
    # | seed_copy | near_duplicate | self_check
    reason: str
    detail: str = ""

    @classmethod
    def of(cls, sample: Sample, reason: str, detail: str = "") -> DropRecord:
        return cls(sample.text, sample.label, sample.language, sample.prompt_id, reason=reason, detail=detail)


@dataclass
class GenerationProgress:
    """Callbacks the CLI uses for its progress display; the library itself stays silent."""

    on_calls_planned: Callable[[int, int], None] = lambda total, cached: None  # noqa: E731
    on_batch_done: Callable[[int, int], None] = lambda calls, samples: None  # noqa: E731
    on_round_done: Callable[[int, int, int], None] = lambda round_index, kept, dropped: None  # noqa: E731


@dataclass
class GenerationResult:
    """The generation stage's outcome: the kept samples (the dataset), every dropped one and why, and its counts."""

    samples: list[Sample]
    dropped: list[DropRecord]
    strategy: str
    teacher_model: str
    calls: int = 0
    cached_calls: int = 0
    rounds: int = 0
    parsed: int = 0
    targets: dict[tuple[str, str], int] = field(default_factory=dict)
    #: The real seed texts the plan may show the teacher (every top-up round included): kept out of the human-data
    #: reference. A superset of what this run showed, fixed by the recipe, so the reference never depends on how a
    #: run went. With feedback, every feedback validation text too.
    teacher_shown: list[str] = field(default_factory=list)
    asked: int = 0  # samples asked of the teacher, every round (top-up and feedback) included
    feedback: FeedbackReport | None = None
    teacher_tokens: TeacherTokens | None = None  # what the stage's teacher calls cost

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter((sample.language, sample.label) for sample in self.samples)

    def drop_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(record.reason for record in self.dropped).items()))


def per_cell_counts(samples: Sequence[Sample]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for (language, label), count in sorted(Counter((s.language, s.label) for s in samples).items()):
        counts[language][label] = count
    return dict(counts)


def features(label_names: list[str]) -> datasets.Features:
    """The synthetic dataset's schema (the human-reference datasets use it too)."""
    return datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=label_names),
            "language": datasets.Value("string"),
            "teacher": datasets.Value("string"),
            "strategy": datasets.Value("string"),
            "prompt_id": datasets.Value("string"),
        }
    )
