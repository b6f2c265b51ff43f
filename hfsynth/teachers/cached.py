"""A teacher behind the call cache (:mod:`hfsynth.cache`): every answer is stored the moment it arrives, and an answer
already stored is never asked for again. Generation asks it for texts; curation's self-check, the quality report and
the teacher's evaluation ask it for labels. Every call key is made here, so a job's answers are found whoever asks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from hfsynth.cache import CallCache, call_key
from hfsynth.prompting import LabelScores, Prompt, Usage, prompt_fingerprint, usage_of
from hfsynth.recipe.schema import SamplingParams
from hfsynth.teachers.base import ClassifyUnit, GenerateUnit, Teacher
from hfsynth.teachers.remote import CLASSIFY_MAX_TOKENS
from hfsynth.teachers.spending import Spending

logger = logging.getLogger(__name__)

#: What is cached for a label answer: ``(answer, seconds per text so far, texts in its batch) -> value``.
Record = Callable[[LabelScores, float, int], str]
#: How the prompts still to answer are cut into batches: ``(their indices, the teacher's batch size) -> batches``.
Batching = Callable[[list[int], int], list[list[int]]]


def generation_key(model_id: str, chat: bool, prompt: Prompt, call_id: str, sampling: SamplingParams,
                   seed: int) -> str:
    # The call id is part of the key: two calls with the same prompt must still give different samples.
    return call_key(job="generate", model=model_id, chat=chat, prompt=prompt_fingerprint(prompt), call=call_id,
                    sampling=sampling.model_dump(), seed=seed)


def label_key(model_id: str, chat: bool, prompt: Prompt, labels: Sequence[str]) -> str:
    """A label asked for a synthetic text (curation's self-check, the quality report's label fidelity)."""
    return call_key(job="classify", model=model_id, chat=chat, prompt=prompt_fingerprint(prompt), labels=list(labels))


def evaluation_key(model_id: str, language: str, text: str, prompt: Prompt) -> str:
    """A test text's label, for the teacher's evaluation."""
    return call_key(job="evaluate", model=model_id, language=language, text=text, prompt=prompt_fingerprint(prompt))


def label_only(answer: LabelScores, seconds: float, batch_size: int) -> str:
    return answer.label or ""


def fixed_batches(indices: list[int], batch_size: int) -> list[list[int]]:
    return [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]


class CachedTeacher:
    """``teacher``: the teacher, or a function that loads it, called only when an answer is not cached yet."""

    def __init__(self, teacher: Teacher | Callable[[], Teacher], cache: CallCache,
                 spending: Spending | None = None) -> None:
        """``spending``: counts every answer's tokens (paid or cached) and keeps the calls within the budget."""
        self._teacher, self.cache, self.spending = teacher, cache, spending

    @property
    def teacher(self) -> Teacher:
        if not isinstance(self._teacher, Teacher):
            self._teacher = self._teacher()
        return self._teacher

    def generate(self, prompts: Sequence[Prompt], keys: Sequence[str], sampling: SamplingParams,
                 on_planned: Callable[[int, int], None] = lambda total, cached: None,
                 on_batch_done: Callable[[list[str], dict[str, str]], None] = lambda keys, answers: None,
                 ) -> tuple[list[str], int]:
        """Answers for ``prompts`` in order, and how many came from the cache. Prompts are asked in fixed batches
        of the teacher's batch size, so a resumed run asks what is left as an uninterrupted run did.
        ``on_batch_done(batch keys, answers so far)`` follows every batch, cached or answered."""
        answers = self.cache.get_many(keys)
        cached = sum(key in answers for key in keys)
        self._count_cached([key for key in keys if key in answers])
        on_planned(len(prompts), cached)
        size = self.teacher.batch_size
        # Each batch still to pay for is a unit of work: a pure function of its prompts and seed, whichever engine
        # runs it; the answers are cached here, by the driver, as they arrive.
        units: list[GenerateUnit] = []
        unit_keys: list[tuple[list[str], list[str]]] = []
        whole_batches = self.teacher.answers_need_their_batch
        for start in range(0, len(prompts), size):
            batch_keys = list(keys[start : start + size])
            todo = [i for i, key in enumerate(batch_keys, start) if key not in answers]
            if not todo:
                on_batch_done(batch_keys, answers)
                continue
            if whole_batches:  # a kill between two of its answers' stores: the batch again, as it was written
                todo = list(range(start, start + len(batch_keys)))
            # The seed depends on the batch's content only, and each prompt keeps its place in the batch, so a
            # resumed run asks what is left exactly as an uninterrupted run did.
            batch_seed = int(call_key(keys=batch_keys)[:8], 16)
            places = None if len(todo) == len(batch_keys) else tuple(i - start for i in todo)
            units.append(GenerateUnit(tuple(prompts[i] for i in todo), sampling, batch_seed, places))
            unit_keys.append(([keys[i] for i in todo], batch_keys))

        def store(unit: int, position: int, answer: str) -> None:
            # The moment it exists: an answer paid for is never lost, even when a later call of its unit fails.
            key = unit_keys[unit][0][position]
            self._store({key: answer}, {key: usage_of(answer)})
            answers[key] = answer

        def run(chosen: list[int]) -> None:
            forward = (lambda unit, position, answer: store(chosen[unit], position, answer))
            for index, _ in self.teacher.stream_generate([units[i] for i in chosen], on_answer=forward):
                on_batch_done(unit_keys[chosen[index]][1], answers)

        self._within_budget(run, [unit.prompts for unit in units], sampling.max_new_tokens, cached, len(keys))
        return [answers[key] for key in keys], cached

    def classify(self, prompts: Sequence[Prompt], keys: Sequence[str], labels: Sequence[str],
                 record: Record = label_only, batching: Batching = fixed_batches,
                 progress: str | None = None) -> list[str]:
        """The cached value (``record`` of the answer) for each prompt, in order. Each answer is stored the moment
        it arrives, with the time its batch took so far; stored again with its whole batch's time when the batch
        ends (a batch cut short keeps the timing so far: a speed report is not worth paying again). ``progress``:
        a bar over the batches, with this description."""
        answers = self.cache.get_many(keys)
        todo = [index for index, key in enumerate(keys) if key not in answers]
        self._count_cached([key for key in keys if key in answers])
        if not todo:
            return [answers[key] for key in keys]
        teacher = self.teacher
        if progress:
            logger.info("teacher: %s: %d texts to classify (%d cached)", progress, len(todo), len(keys) - len(todo))
        batches = batching(todo, teacher.batch_size)
        units = [ClassifyUnit(tuple(prompts[index] for index in batch), tuple(labels)) for batch in batches]
        started, arrived = time.perf_counter(), [0] * len(batches)

        def on_answer(unit: int, position: int, answer: LabelScores) -> None:
            arrived[unit] += 1  # until the batch ends: its time so far over its answers so far
            seconds = (time.perf_counter() - started) / arrived[unit]
            key = keys[batches[unit][position]]
            values = {key: record(answer, seconds, len(batches[unit]))}
            self._store(values, {key: answer.usage})
            answers.update(values)

        bar = tqdm(total=len(units), desc=f"teacher {progress}", unit="batch", disable=not progress)

        def run(chosen: list[int]) -> None:
            nonlocal started
            forward = (lambda unit, position, answer: on_answer(chosen[unit], position, answer))
            for index, scores, seconds in teacher.stream_classify([units[i] for i in chosen], on_answer=forward):
                batch = batches[chosen[index]]
                timed = {keys[i]: record(answer, seconds / len(batch), len(batch))
                         for i, answer in zip(batch, scores, strict=True)}
                changed = {key: value for key, value in timed.items() if answers.get(key) != value}
                self.cache.put_many(changed)  # the batch's timing; the tokens stored with each answer stay
                answers.update(changed)
                started = time.perf_counter()
                bar.update()

        with bar:
            self._within_budget(run, [unit.prompts for unit in units], CLASSIFY_MAX_TOKENS, len(keys) - len(todo),
                                len(keys))
        return [answers[key] for key in keys]

    # --- what the answers cost ----------------------------------------------------------------------------------

    def _store(self, values: dict[str, str], usage: dict[str, Usage | None]) -> None:
        tokens = {key: (used.prompt_tokens, used.completion_tokens) for key, used in usage.items() if used}
        self.cache.put_many(values, tokens)
        if self.spending is not None:
            for key in values:
                self.spending.count(tokens.get(key), cached=False)

    def _count_cached(self, keys: list[str]) -> None:
        if self.spending is not None and keys:
            tokens = self.cache.tokens_of(keys)
            for key in keys:
                self.spending.count(tokens.get(key), cached=True)

    def _within_budget(self, run: Callable[[list[int]], None], unit_prompts: Sequence[Sequence[Prompt]],
                       max_answer_tokens: int, answered: int, total: int) -> None:
        """``run(unit indices)`` over every unit, in order: all at once without a budget; with one, as many at a time
        as fit beside what the cache says was spent, each unit at its worst case (prompt tokens and the most tokens
        its answers may take)."""
        remaining = list(range(len(unit_prompts)))
        if self.spending is None or not self.spending.capped:
            run(remaining)
            return
        worst = [(sum(self.teacher.prompt_tokens(list(prompts))), max_answer_tokens * len(prompts))
                 for prompts in unit_prompts]
        while remaining:
            spent = self.cache.spent()
            fit = self.spending.affordable(spent, [worst[index] for index in remaining])
            if fit == 0:
                raise self.spending.reached(spent, answered, total, worst[remaining[0]])
            run(remaining[:fit])
            answered += sum(len(unit_prompts[index]) for index in remaining[:fit])
            remaining = remaining[fit:]
