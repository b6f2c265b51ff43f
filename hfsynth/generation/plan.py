"""Generation's plan: which calls ask the teacher for which samples, and the real seed texts each call shows.

A call's place in the plan (language, label, round, index) fixes its seed examples, so a re-run, a resumed run and
``hfsynth plan`` all see the same calls.
"""

from __future__ import annotations

import math
import random

from hfsynth.generation.prompts import GenerationRequest
from hfsynth.realdata import examples_by_label, load_labelled_set
from hfsynth.recipe.schema import Recipe


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
