"""The generation stage: plan label x language x count, prompt the teacher, parse, curate, top up.

Every teacher answer goes to the call cache the moment it arrives, so a killed run resumes where it stopped
and, because batches, seeds and top-up rounds are all derived from the plan and the cached answers, ends with the
same dataset as an uninterrupted run.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hfsynth.cache import CallCache, call_key
from hfsynth.curation import (
    ChatterCheck,
    CurationResult,
    Curator,
    DropRecord,
    Sample,
    apply_self_check,
    instruction_texts,
)
from hfsynth.feedback import SetFitSteerer, Steerer, load_validation, round_of, run_feedback
from hfsynth.parsing import parse_answer
from hfsynth.prompts import GenerationRequest, classification_prompt, generation_prompt, prompt_fingerprint
from hfsynth.realdata import examples_by_label, labelled_texts, load_labelled_set
from hfsynth.recipe import Recipe
from hfsynth.run_records import FeedbackReport
from hfsynth.teachers.base import ClassifyUnit, GenerateUnit, LabelScores, Prompt, Teacher


@dataclass
class GenerationProgress:
    """Callbacks the CLI uses for its progress display; the library itself stays silent."""

    on_calls_planned: Callable[[int, int], None] = lambda total, cached: None  # noqa: E731
    on_batch_done: Callable[[int, int], None] = lambda calls, samples: None  # noqa: E731
    on_round_done: Callable[[int, int, int], None] = lambda round_index, kept, dropped: None  # noqa: E731


@dataclass
class GenerationResult:
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

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter((sample.language, sample.label) for sample in self.samples)

    def drop_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(record.reason for record in self.dropped).items()))


def load_seed_examples(recipe: Recipe) -> dict[str, dict[str, list[str]]]:
    """Real labelled examples per language and label, for few-shot generation."""
    seeds: dict[str, dict[str, list[str]]] = {}
    for seed_set in recipe.generation.seeds:
        by_label = examples_by_label(load_labelled_set(seed_set, recipe.label_names))
        merged = seeds.setdefault(seed_set.language, {})
        for label, texts in by_label.items():
            merged.setdefault(label, []).extend(texts)
    return seeds


def plan_requests(
    recipe: Recipe,
    needed: dict[tuple[str, str], int],
    round_index: int,
    seed_examples: dict[str, dict[str, list[str]]],
) -> list[GenerationRequest]:
    """Calls that ask for ``needed`` samples per (language, label); call indices continue across rounds."""
    config = recipe.generation
    calls_per_cell = math.ceil(config.samples_per_label / config.samples_per_call)
    requests = []
    for language in recipe.languages:
        for label in recipe.label_names:
            missing = needed.get((language, label), 0)
            for offset in range(math.ceil(missing / config.samples_per_call)):
                call_index = round_index * calls_per_cell + offset
                pool = seed_examples.get(language, {}).get(label, [])
                rng = random.Random(f"{config.seed}/{language}/{label}/{call_index}")
                shown = tuple(rng.sample(pool, min(config.seeds_per_call, len(pool)))) if pool else ()
                count = min(config.samples_per_call, missing - offset * config.samples_per_call)
                requests.append(GenerationRequest(label, language, count, call_index, shown))
    return requests


def seed_texts_the_plan_may_show(recipe: Recipe, seed_examples: dict[str, dict[str, list[str]]]) -> list[str]:
    """Every seed text any call of the recipe's plan could show, in all ``1 + top_up_rounds`` rounds (a top-up
    round asks for at most a first round's calls), sorted."""
    full = {(language, label): recipe.generation.samples_per_label
            for language in recipe.languages for label in recipe.label_names}
    return sorted({text for round_index in range(1 + recipe.generation.top_up_rounds)
                   for request in plan_requests(recipe, full, round_index, seed_examples)
                   for text in request.seed_examples})


class CachedTeacher:
    """Routes teacher calls through the cache, in fixed batches so that a resumed run sees the same batches."""

    def __init__(self, teacher: Teacher, cache: CallCache, recipe: Recipe) -> None:
        self.teacher, self.cache, self.recipe = teacher, cache, recipe

    def generation_key(self, prompt: Prompt, call_id: str) -> str:
        # The call id is part of the key: two calls with the same prompt must still give different samples.
        return call_key(job="generate", model=self.teacher.model_id, chat=self.teacher.uses_chat,
                        prompt=prompt_fingerprint(prompt), call=call_id,
                        sampling=self.recipe.teacher.sampling.model_dump(), seed=self.recipe.generation.seed)

    def generate(self, prompts: Sequence[Prompt], call_ids: Sequence[str],
                 progress: GenerationProgress | None = None,
                 count_samples: Callable[[int, str], int] = lambda position, answer: 0) -> tuple[list[str], int]:
        """Answers for ``prompts`` in order, and how many came from the cache. ``count_samples(position, answer)``:
        the samples an answer gives, for the progress display."""
        keys = [self.generation_key(prompt, call_id) for prompt, call_id in zip(prompts, call_ids, strict=True)]
        position = {key: index for index, key in enumerate(keys)}
        answers = self.cache.get_many(keys)
        cached = sum(key in answers for key in keys)
        if progress:
            progress.on_calls_planned(len(prompts), cached)
        size = self.teacher.batch_size
        # Each batch still to pay for is a unit of work: a pure function of its prompts and seed, whichever engine
        # runs it; the answers are cached here, by the driver, as each unit returns.
        units: list[GenerateUnit] = []
        unit_keys: list[tuple[list[str], list[str]]] = []
        for start in range(0, len(prompts), size):
            batch_keys = keys[start : start + size]
            todo = [i for i, key in enumerate(batch_keys, start) if key not in answers]
            if todo:
                # The seed depends on the batch's content only, and each prompt keeps its place in the batch, so a
                # resumed run asks what is left exactly as an uninterrupted run did.
                batch_seed = int(call_key(keys=batch_keys)[:8], 16)
                places = None if len(todo) == len(batch_keys) else tuple(i - start for i in todo)
                units.append(GenerateUnit(tuple(prompts[i] for i in todo), self.recipe.teacher.sampling, batch_seed,
                                          places))
                unit_keys.append(([keys[i] for i in todo], batch_keys))
            elif progress:
                progress.on_batch_done(len(batch_keys), sum(count_samples(position[k], answers[k]) for k in batch_keys))

        def store(unit: int, position: int, answer: str) -> None:
            # The moment it exists: an answer paid for is never lost, even when a later call of its unit fails.
            key = unit_keys[unit][0][position]
            self.cache.put_many({key: answer})
            answers[key] = answer

        for index, _ in self.teacher.stream_generate(units, on_answer=store):
            batch_keys = unit_keys[index][1]
            if progress:
                progress.on_batch_done(len(batch_keys), sum(count_samples(position[k], answers[k]) for k in batch_keys))
        return [answers[key] for key in keys], cached

    def classify(self, prompts: Sequence[Prompt]) -> list[str | None]:
        """The teacher's label for each classification prompt (``None`` where it gave no readable label)."""
        keys = [call_key(job="classify", model=self.teacher.model_id, chat=self.teacher.uses_chat,
                         prompt=prompt_fingerprint(prompt), labels=self.recipe.label_names) for prompt in prompts]
        answers = self.cache.get_many(keys)
        todo = [i for i, key in enumerate(keys) if key not in answers]
        size = self.teacher.batch_size
        chunks = [todo[start : start + size] for start in range(0, len(todo), size)]
        units = [ClassifyUnit(tuple(prompts[i] for i in chunk), tuple(self.recipe.label_names)) for chunk in chunks]

        def store(unit: int, position: int, score: LabelScores) -> None:
            key = keys[chunks[unit][position]]  # the moment it exists, as generation's answers
            self.cache.put_many({key: score.label or ""})
            answers[key] = score.label or ""

        for _ in self.teacher.stream_classify(units, on_answer=store):
            pass
        return [answers[key] or None for key in keys]


def generate_samples(
    recipe: Recipe, teacher: Teacher, cache_path: Path, progress: GenerationProgress | None = None,
    steerer: Steerer | None = None,
) -> GenerationResult:
    """Run generation and curation to the recipe's targets (within ``generation.top_up_rounds`` extra rounds), then
    the recipe's feedback rounds (:mod:`hfsynth.feedback`; ``steerer``: its steering student, default a head-only
    SetFit)."""
    config = recipe.generation
    seed_examples = load_seed_examples(recipe) if config.strategy == "few-shot" else {}
    seed_texts = [text for by_label in seed_examples.values() for texts in by_label.values() for text in texts]
    # Every real test text, not only the evaluated subset: a leak of any of them is a leak.
    test_texts = labelled_texts(recipe, recipe.evaluation.sets)
    plan_shown = seed_texts_the_plan_may_show(recipe, seed_examples)
    validation = load_validation(recipe, [*plan_shown, *test_texts]) if config.feedback else None
    validation_texts = validation.texts if validation else []
    chatter = ChatterCheck.for_task(recipe.label_names, instruction_texts(recipe),
                                    recipe.curation.instruction_echo_share)
    targets = {(language, label): config.samples_per_label
               for language in recipe.languages for label in recipe.label_names}
    # The validation texts may all be shown (S3's errors): the human-data reference never trains on them either.
    shown = sorted({*plan_shown, *validation_texts})
    result = GenerationResult([], [], config.strategy, teacher.model_id, targets=targets, teacher_shown=shown)
    chat = teacher.uses_chat
    parse = functools.lru_cache(maxsize=None)(lambda answer: parse_answer(answer, chat))  # progress parses too

    with CallCache(cache_path) as cache:
        cached_teacher = CachedTeacher(teacher, cache, recipe)

        def ask(requests: list[GenerationRequest]) -> list[Sample]:
            prompts = [generation_prompt(recipe, request) for request in requests]
            # What the result will count: at most the texts each request asked for.
            answers, cached = cached_teacher.generate(
                prompts, [request.prompt_id for request in requests], progress,
                count_samples=lambda i, answer: min(len(parse(answer)), requests[i].count))
            result.calls += len(prompts)
            result.cached_calls += cached
            result.asked += sum(request.count for request in requests)
            # A chatty teacher may write more than asked: keep only what was asked for.
            return [Sample(text, request.label, request.language, request.prompt_id)
                    for request, answer in zip(requests, answers, strict=True)
                    for text in parse(answer)[: request.count]]

        curator = Curator(recipe.curation, [*seed_texts, *validation_texts], test_texts, chatter, validation_texts)

        def curate_all(raw: list[Sample]) -> CurationResult:
            # Each round appends to ``raw``: only its new samples are curated, against what is already kept.
            curated = curator.add(raw[curator.seen :])
            if recipe.curation.self_check and curated.kept:
                curated = _self_check(recipe, cached_teacher, curated)
            return curated

        raw_samples: list[Sample] = []
        curated = CurationResult([], [])
        needed = dict(targets)
        for round_index in range(1 + config.top_up_rounds):
            requests = plan_requests(recipe, needed, round_index, seed_examples)
            if not requests:
                break
            raw_samples += ask(requests)
            result.rounds = round_index + 1
            curated = curate_all(raw_samples)
            if progress:
                progress.on_round_done(round_index, len(curated.kept), len(curated.dropped))
            counts = Counter((sample.language, sample.label) for sample in curated.kept)
            needed = {cell: target - counts[cell] for cell, target in targets.items() if counts[cell] < target}

        if validation is not None:
            raw_samples, result.feedback = run_feedback(
                recipe, raw_samples, ask, lambda raw: _dataset_samples(curate_all(raw).kept, targets),
                steerer or SetFitSteerer(recipe), validation)
            curated = curate_all(raw_samples)
        result.parsed = len(raw_samples)

    result.samples = _dataset_samples(curated.kept, targets)
    result.dropped = curated.dropped
    return result


def _dataset_samples(kept: Sequence[Sample], targets: dict[tuple[str, str], int]) -> list[Sample]:
    """The first pass's samples up to the target per cell, in plan order (over-generation is a reserve, not extra
    data), and every kept sample of the feedback rounds (their budget is extra data by design)."""
    taken: Counter[tuple[str, str]] = Counter()
    samples = []
    for sample in kept:
        cell = (sample.language, sample.label)
        if round_of(sample.prompt_id):
            samples.append(sample)
        elif taken[cell] < targets[cell]:
            taken[cell] += 1
            samples.append(sample)
    return samples


def _self_check(recipe: Recipe, teacher: CachedTeacher, curated: CurationResult) -> CurationResult:
    prompts = [classification_prompt(recipe, sample.text, sample.language) for sample in curated.kept]
    checked = apply_self_check(curated.kept, teacher.classify(prompts))
    return CurationResult(checked.kept, curated.dropped + checked.dropped)


def per_cell_counts(samples: Sequence[Sample]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for (language, label), count in sorted(Counter((s.language, s.label) for s in samples).items()):
        counts[language][label] = count
    return dict(counts)
