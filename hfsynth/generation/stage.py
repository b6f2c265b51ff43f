"""The generation stage: plan label x language x count, prompt the teacher, parse, curate, top up, then the recipe's
feedback rounds.

Every teacher answer goes to the call cache the moment it arrives (:mod:`hfsynth.teachers.cached`), so a killed run
resumes where it stopped and, because batches, seeds and top-up rounds are all derived from the plan and the cached
answers, ends with the same dataset as an uninterrupted run.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from hfsynth.cache import CallCache
from hfsynth.engines.base import LOCAL, Engine
from hfsynth.generation.curation import ChatterCheck, CurationResult, Curator, apply_self_check, instruction_texts
from hfsynth.generation.feedback import SetFitSteerer, Steerer, load_validation, run_feedback
from hfsynth.generation.parsing import parse_answer
from hfsynth.generation.plan import load_seed_examples, plan_requests, seed_texts_the_plan_may_show
from hfsynth.generation.prompts import GenerationRequest, generation_prompt
from hfsynth.generation.samples import GenerationProgress, GenerationResult, Sample
from hfsynth.prompting import classification_prompt
from hfsynth.realdata import labelled_texts
from hfsynth.recipe.schema import Recipe
from hfsynth.teachers.base import Teacher
from hfsynth.teachers.cached import CachedTeacher, generation_key, label_key
from hfsynth.teachers.spending import Spending

Cell = tuple[str, str]  # (language, label)


class _Generation:
    """One recipe's generation: asks through the cache, curates incrementally, and keeps the running totals."""

    def __init__(self, recipe: Recipe, teacher: CachedTeacher, result: GenerationResult, curator: Curator,
                 progress: GenerationProgress | None) -> None:
        self.recipe, self.teacher, self.result, self.curator = recipe, teacher, result, curator
        self.progress = progress or GenerationProgress()
        chat = teacher.teacher.uses_chat
        # JSON answers are for chat teachers: a base model's document, and so its cache keys, stay as they were.
        self.structured = chat and recipe.generation.structured == "json"
        self.parse = functools.lru_cache(maxsize=None)(  # progress too
            lambda answer: parse_answer(answer, chat, self.structured))

    def ask(self, requests: list[GenerationRequest]) -> list[Sample]:
        """The parsed, uncurated samples of ``requests`` (at most the texts each asked for: a chatty teacher may
        write more)."""
        recipe, teacher = self.recipe, self.teacher.teacher
        prompts = [generation_prompt(recipe, request, self.structured) for request in requests]
        keys = [generation_key(teacher.model_id, teacher.uses_chat, prompt, request.prompt_id,
                               recipe.teacher.sampling, recipe.generation.seed)
                for prompt, request in zip(prompts, requests, strict=True)]
        position = {key: index for index, key in enumerate(keys)}

        def batch_done(batch_keys: list[str], answers: dict[str, str]) -> None:
            samples = sum(min(len(self.parse(answers[key])), requests[position[key]].count) for key in batch_keys)
            self.progress.on_batch_done(len(batch_keys), samples)

        answers, cached = self.teacher.generate(prompts, keys, recipe.teacher.sampling,
                                                self.progress.on_calls_planned, batch_done)
        self.result.calls += len(prompts)
        self.result.cached_calls += cached
        self.result.asked += sum(request.count for request in requests)
        return [Sample(text, request.label, request.language, request.prompt_id, request.feedback_round)
                for request, answer in zip(requests, answers, strict=True)
                for text in self.parse(answer)[: request.count]]

    def curate(self, raw: list[Sample]) -> CurationResult:
        """Every sample of ``raw`` curated: each round appends to it, and only its new samples are curated, against
        what is already kept."""
        curated = self.curator.add(raw[self.curator.seen :])
        if self.recipe.curation.self_check and curated.kept:
            prompts = [classification_prompt(self.recipe, sample.text, sample.language) for sample in curated.kept]
            teacher = self.teacher.teacher
            keys = [label_key(teacher.model_id, teacher.uses_chat, prompt, self.recipe.label_names)
                    for prompt in prompts]
            labels = self.teacher.classify(prompts, keys, self.recipe.label_names)
            checked = apply_self_check(curated.kept, [label or None for label in labels])
            curated = CurationResult(checked.kept, curated.dropped + checked.dropped)
        return curated

    def first_pass(self, seed_examples: dict[str, dict[str, list[str]]]) -> list[Sample]:
        """The first round and its top-ups (within ``generation.top_up_rounds``): the uncurated samples."""
        raw: list[Sample] = []
        needed = dict(self.result.targets)
        for round_index in range(1 + self.recipe.generation.top_up_rounds):
            requests = plan_requests(self.recipe, needed, round_index, seed_examples)
            if not requests:
                break
            raw += self.ask(requests)
            self.result.rounds = round_index + 1
            curated = self.curate(raw)
            self.progress.on_round_done(round_index, len(curated.kept), len(curated.dropped))
            counts = Counter((sample.language, sample.label) for sample in curated.kept)
            needed = {cell: target - counts[cell] for cell, target in self.result.targets.items()
                      if counts[cell] < target}
        return raw

    def dataset_samples(self, raw: list[Sample]) -> list[Sample]:
        return _dataset_samples(self.curate(raw).kept, self.result.targets)


def generate_samples(
    recipe: Recipe, teacher: Teacher, cache_path: Path, progress: GenerationProgress | None = None,
    steerer: Steerer | None = None, engine: Engine | None = None, embeddings: Path | None = None,
) -> GenerationResult:
    """Run generation and curation to the recipe's targets (within ``generation.top_up_rounds`` extra rounds), then
    the recipe's feedback rounds (:mod:`hfsynth.generation.feedback`; ``steerer``: its steering student, default a
    head-only SetFit embedding through the run's store ``embeddings``, fitted in units ``engine`` runs)."""
    config = recipe.generation
    seed_examples = load_seed_examples(recipe) if config.strategy == "few-shot" else {}
    seed_texts = [text for by_label in seed_examples.values() for texts in by_label.values() for text in texts]
    # Every real test text, not only the evaluated subset: a leak of any of them is a leak.
    test_texts = labelled_texts(recipe, recipe.evaluation.sets)
    plan_shown = seed_texts_the_plan_may_show(recipe, seed_examples)
    validation = load_validation(recipe, [*plan_shown, *test_texts]) if config.feedback else None
    validation_texts = validation.texts if validation else []
    targets = {(language, label): config.samples_per_label
               for language in recipe.languages for label in recipe.label_names}
    # The validation texts may all be shown (S3's errors): the human-data reference never trains on them either.
    shown = sorted({*plan_shown, *validation_texts})
    result = GenerationResult([], [], config.strategy, teacher.model_id, targets=targets, teacher_shown=shown)
    chatter = ChatterCheck.for_task(recipe.label_names, instruction_texts(recipe),
                                    recipe.curation.instruction_echo_share)
    curator = Curator(recipe.curation, [*seed_texts, *validation_texts], test_texts, chatter, validation_texts)

    with CallCache(cache_path) as cache:
        spending = Spending(recipe.teacher, "generation")
        generation = _Generation(recipe, CachedTeacher(teacher, cache, spending), result, curator, progress)
        raw = generation.first_pass(seed_examples)
        if validation is not None:
            steerer = steerer or SetFitSteerer(recipe, embeddings)
            raw, result.feedback = run_feedback(recipe, raw, generation.ask, generation.dataset_samples, steerer,
                                                validation, engine or LOCAL)
        curated = generation.curate(raw)
    result.parsed = len(raw)
    result.teacher_tokens = spending.record()
    result.samples = _dataset_samples(curated.kept, targets)
    result.dropped = curated.dropped
    return result


def _dataset_samples(kept: Sequence[Sample], targets: dict[Cell, int]) -> list[Sample]:
    """The first pass's samples up to the target per cell, in plan order (over-generation is a reserve, not extra
    data), and every kept sample of the feedback rounds (their budget is extra data by design)."""
    taken: Counter[Cell] = Counter()
    samples = []
    for sample in kept:
        cell = (sample.language, sample.label)
        if sample.round:
            samples.append(sample)
        elif taken[cell] < targets[cell]:
            taken[cell] += 1
            samples.append(sample)
    return samples
