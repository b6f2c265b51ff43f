"""A small deterministic teacher written against hfsynth's own Teacher interface.

Used where a test must place a crash exactly or needs many teacher calls in milliseconds; the real teachers are
tested in test_local_teacher / test_remote_teacher and end to end in test_cli.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from hfsynth.errors import TeacherError
from hfsynth.prompting import LabelScores, Prompt
from hfsynth.recipe.schema import SamplingParams
from hfsynth.teachers.base import Teacher

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()


class ScriptedTeacher(Teacher):
    """Writes numbered lists of distinct pseudo-sentences derived from the prompt, the seed and a counter."""

    model_id = "test/scripted-teacher"
    uses_chat = True

    def __init__(self, crash_after_batches: int | None = None, repeat_every: int = 0) -> None:
        super().__init__()
        self.crash_after_batches = crash_after_batches
        self.repeat_every = repeat_every  # every n-th answer repeats an earlier one: exercises dedup + top-up
        self.batches = 0
        self.prompts_seen: list[Prompt] = []

    @property
    def batch_size(self) -> int:
        return 3

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams, seed: int,
                 on_answer: Callable[[int, str], None] | None = None,
                 positions: Sequence[int] | None = None) -> list[str]:
        if self.crash_after_batches is not None and self.batches >= self.crash_after_batches:
            raise KeyboardInterrupt("simulated kill")
        self.batches += 1
        self.prompts_seen.extend(prompts)
        answers = []
        for position, prompt in enumerate(prompts):
            self.stats.calls += 1
            # Like a sampling LLM: the same prompt twice in one batch still gives different texts.
            place = positions[position] if positions is not None else position  # as a remote teacher seeds
            digest = hashlib.sha256(f"{prompt.messages}{seed}/{place}".encode()).digest()
            if self.repeat_every and self.stats.calls % self.repeat_every == 0:
                digest = b"\x00" * 32  # the same texts as every other repeated answer
            lines = [" ".join(WORDS[(b + i * 7) % len(WORDS)] for b in digest[i * 6 : i * 6 + 6]) for i in range(4)]
            answers.append("Here are the texts:\n" + "\n".join(f"{n}. {line}." for n, line in enumerate(lines, 1)))
            if on_answer is not None:
                on_answer(position, answers[-1])
        return answers

    def classify(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelScores]:
        return [LabelScores({label: 1.0 / len(labels) for label in labels}) for _ in prompts]


class FailingMidBatch(ScriptedTeacher):
    """Answers the first ``answered`` prompts of its first batch (handing each over as it exists), then fails for
    good, as a remote teacher whose next request gets a 4xx does."""

    def __init__(self, answered: int) -> None:
        super().__init__()
        self.answered = answered

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams, seed: int,
                 on_answer: Callable[[int, str], None] | None = None) -> list[str]:
        answers = super().generate(prompts[: self.answered], sampling, seed, on_answer)
        raise TeacherError(f"request {len(answers)} failed for good: HTTP 404")
