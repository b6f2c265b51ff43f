"""Error-driven generation: after the first pass, the student tells the teacher what to write next.

Two published methods, as one generation strategy (``generation.feedback`` in a recipe):

- S3, Synthesis Step by Step (Wang, Zhou & Sachan, Findings of EMNLP 2023): train a small model on the synthetic
  data, find its errors on a small real validation set, and have the teacher extrapolate them into new examples
  (``signal: errors``).
- ProGen (Ye et al., Findings of EMNLP 2022): feedback from the small model picks the most helpful synthetic examples
  as in-context demonstrations for the next round (``signal: demonstrations``). ProGen measures helpfulness with an
  influence function; here a cheap proxy: the synthetic examples of a label closest, in the steering student's
  embedding, to the real validation texts of that label it got wrong (all of them when it got none wrong).

Each round trains the steering student (a head-only SetFit: seconds), scores it per (language, label) on the
validation texts, spends the round's share of the budget on the cells with the lowest F1 (in proportion to 1 - F1)
and asks the teacher with prompts built from those errors or demonstrations. Everything that chooses is a pure
function of the recipe and of the earlier rounds' cached answers, ordered with ties broken by text, so a re-run (or a
run resumed after a kill mid-round) builds the same prompts and hits the call cache.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hfsynth.engines.base import Engine, UnitSpec, gather
from hfsynth.errors import HfsynthError
from hfsynth.generation.prompts import GenerationRequest
from hfsynth.generation.samples import Sample, features
from hfsynth.metrics import classification_scores
from hfsynth.realdata import load_labelled_set
from hfsynth.recipe.schema import FeedbackConfig, Recipe
from hfsynth.recipe.student_params import SetFitParams
from hfsynth.reproducibility import training_context
from hfsynth.runs.records import FeedbackChoice, FeedbackReport, FeedbackRound
from hfsynth.text_measures import embedding_model, normalize

Cell = tuple[str, str]  # (language, label)
#: Asks the teacher for the requests' samples (through the call cache); returns the parsed, uncurated samples.
Ask = Callable[[list[GenerationRequest]], list[Sample]]
#: The samples a dataset built from ``raw`` samples would hold (curated, the first pass cut to its targets).
Select = Callable[[list[Sample]], list[Sample]]


@dataclass(frozen=True)
class ValidationSet:
    """The small real labelled set the steering student is scored on (never a test text, never a seed text)."""

    texts: list[str]
    labels: list[str]
    languages: list[str]


def load_validation(recipe: Recipe, excluded: Sequence[str]) -> ValidationSet:
    """``examples_per_label`` texts per (language, label) of the feedback validation sets, drawn with the recipe's
    seed from those not in ``excluded`` (test texts, seed texts the plan may show: compared case-, punctuation- and
    space-blind)."""
    config = _config(recipe)
    skip = {normalize(text) for text in excluded}
    pool: dict[Cell, list[str]] = defaultdict(list)
    for seed_set in recipe.feedback_validation_sets:
        rows = load_labelled_set(seed_set, recipe.label_names)
        for text, label in zip(rows["text"], rows["label"], strict=True):
            if normalize(text) not in skip:
                skip.add(normalize(text))  # a text repeated in the sets is used once
                pool[(seed_set.language, label)].append(text)
    texts, labels, languages = [], [], []
    for language in recipe.languages:
        for label in recipe.label_names:
            candidates = sorted(pool.get((language, label), []))
            rng = random.Random(f"{recipe.generation.seed}/feedback-validation/{language}/{label}")
            for text in rng.sample(candidates, min(config.validation.examples_per_label, len(candidates))):
                texts.append(text)
                labels.append(label)
                languages.append(language)
    if not texts:
        raise HfsynthError("generation.feedback.validation: no real texts left to score the steering student on "
                           "(test texts and seed texts the teacher may be shown are left out): give other sets")
    return ValidationSet(texts, labels, languages)


class Steerer(Protocol):
    """The student whose validation errors steer the teacher: fitted anew each round."""

    name: str

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None: ...
    def predict(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]: ...
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class SetFitSteerer:
    """A head-only SetFit (the pretrained body encodes, a logistic regression is fitted): seconds per round."""

    def __init__(self, recipe: Recipe, embeddings: Path | None = None) -> None:
        self.recipe = recipe
        #: The run's embedding store: each round's student re-embeds only the texts that are new.
        self.embeddings = embeddings
        setfit = [student for student in recipe.students if student.kind == "setfit"]
        chosen = _config(recipe).student
        config = next((student for student in setfit if student.name == chosen), setfit[0] if setfit else None)
        self.name = config.model if config else embedding_model(recipe)
        base = config.params if config else SetFitParams()
        self.params = SetFitParams(**{**base.model_dump(), "body_training": "none"})
        self.student = None

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        import datasets

        from hfsynth.students.setfit_student import SetFitStudent  # torch and setfit: only when a round trains

        schema = features(self.recipe.label_names)
        data = datasets.Dataset.from_dict({"text": list(texts), "label": list(labels)},
                                          features=datasets.Features({k: schema[k] for k in ("text", "label")}))
        self.student = SetFitStudent(self.recipe, self.name, self.params)
        self.student.embedding_store = self.embeddings
        with training_context(self.params.seed), tempfile.TemporaryDirectory() as checkpoints:
            self.student.train(data, Path(checkpoints))

    def predict(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        with training_context(self.params.seed):  # the fixed thread count: a near tie must not flip on resume
            return self.student.predict(texts, languages)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with training_context(self.params.seed):
            return self.student.pretrained_embedder(normalize=True).encode(texts)


@dataclass(frozen=True)
class Scores:
    """The steering student on the validation set: macro-F1 (mean over languages), F1 per cell, its mistakes."""

    macro_f1: float
    f1: dict[Cell, float]
    #: Per cell: (validation text, label it was taken for) of the cell's texts the student got wrong.
    errors: dict[Cell, list[tuple[str, str]]]


def score(recipe: Recipe, steerer: Steerer, validation: ValidationSet) -> Scores:
    predicted = steerer.predict(validation.texts, validation.languages)
    f1: dict[Cell, float] = {}
    errors: dict[Cell, list[tuple[str, str]]] = defaultdict(list)
    macro = []
    for language in recipe.languages:
        index = [i for i, lang in enumerate(validation.languages) if lang == language]
        if not index:
            continue
        result = classification_scores([validation.labels[i] for i in index], [predicted[i] for i in index],
                                       recipe.label_names)
        macro.append(result["macro_f1"])
        f1.update({(language, label): row["f1"] for label, row in result["per_label"].items()})
        for i in index:
            if predicted[i] != validation.labels[i]:
                errors[(language, validation.labels[i])].append((validation.texts[i], predicted[i]))
    # The most confused pair first, then by text: a stable order whatever order the set was read in.
    for pairs in errors.values():
        taken = Counter(label for _, label in pairs)
        pairs.sort(key=lambda pair: (-taken[pair[1]], pair[1], pair[0]))
    return Scores(float(np.mean(macro)) if macro else 0.0, f1, dict(errors))


def round_budgets(recipe: Recipe) -> list[int]:
    """Extra samples per round: ``budget`` x the first pass's, in whole samples, the remainder to the first rounds."""
    config = _config(recipe)
    total = round(config.budget * first_pass_asked(recipe))
    return [total // config.rounds + (1 if index < total % config.rounds else 0) for index in range(config.rounds)]


def first_pass_asked(recipe: Recipe) -> int:
    return recipe.generation.samples_per_label * len(recipe.languages) * len(recipe.labels)


def allocate(scores: Scores, cells: Sequence[Cell], budget: int) -> dict[Cell, int]:
    """``budget`` samples over ``cells`` in proportion to 1 - F1 (evenly when every cell is perfect), by largest
    remainder; ties go to the lower F1, then to the cell's place in the recipe."""
    weights = {cell: 1.0 - scores.f1.get(cell, 0.0) for cell in cells}
    if sum(weights.values()) <= 1e-9:
        weights = dict.fromkeys(cells, 1.0)
    total = sum(weights.values())
    exact = {cell: budget * weight / total for cell, weight in weights.items()}
    shares = {cell: math.floor(value + 1e-9) for cell, value in exact.items()}
    order = sorted(cells, key=lambda cell: (-(exact[cell] - shares[cell]), scores.f1.get(cell, 0.0), cells.index(cell)))
    for cell in order[: budget - sum(shares.values())]:
        shares[cell] += 1
    return {cell: count for cell, count in shares.items() if count}


def demonstrations(steerer: Steerer, scores: Scores, validation: ValidationSet, data: Sequence[Sample],
                   cell: Cell) -> list[str]:
    """The cell's synthetic texts, most helpful first: closest on average to the cell's misclassified validation
    texts (to all of them when none is), ties broken by text."""
    synthetic = sorted({sample.text for sample in data if (sample.language, sample.label) == cell})
    targets = [text for text, _ in scores.errors.get(cell, [])] or [
        text for text, label, language in zip(validation.texts, validation.labels, validation.languages, strict=True)
        if (language, label) == cell]
    if not synthetic or not targets:
        return synthetic
    closeness = (steerer.embed(synthetic) @ steerer.embed(targets).T).mean(axis=1)
    # Rounded: the order must not hang on the last bits of a float.
    return [text for _, text in sorted(zip((-round(float(c), 5) for c in closeness), synthetic, strict=True))]


@dataclass
class RoundPlan:
    requests: list[GenerationRequest] = field(default_factory=list)
    choices: dict[Cell, FeedbackChoice] = field(default_factory=dict)


def plan_round(recipe: Recipe, round_index: int, budget: int, scores: Scores, steerer: Steerer,
               validation: ValidationSet, data: Sequence[Sample]) -> RoundPlan:
    """The round's teacher calls: per chosen cell, calls of ``samples_per_call`` showing its errors (S3) or
    demonstrations (ProGen), ``examples_per_call`` each, in turn; with ``both`` calls alternate between them."""
    config, per_call = _config(recipe), recipe.generation.samples_per_call
    cells = [(language, label) for language in recipe.languages for label in recipe.label_names]
    plan = RoundPlan()
    for cell, asked in allocate(scores, cells, budget).items():
        errors = scores.errors.get(cell, [])
        # A cell with no misclassified text of its own (its F1 lost to false positives) is shown demonstrations.
        needs_demos = config.signal != "errors" or not errors
        demos = demonstrations(steerer, scores, validation, data, cell) if needs_demos else []
        requests = []
        for call in range(math.ceil(asked / per_call)):
            use_errors = bool(errors) and (config.signal == "errors" or (config.signal == "both" and call % 2 == 0))
            turn = call // 2 if config.signal == "both" else call
            shown = _window(errors if use_errors else demos, turn, config.examples_per_call)
            requests.append(GenerationRequest(
                cell[1], cell[0], min(per_call, asked - call * per_call), call, feedback_round=round_index,
                errors=tuple(shown) if use_errors else (), demonstrations=() if use_errors else tuple(shown)))
        plan.requests += requests
        taken = Counter(label for _, label in errors).most_common(1)
        plan.choices[cell] = FeedbackChoice(
            language=cell[0], label=cell[1], f1=round(scores.f1.get(cell, 0.0), 4),
            confused_with=taken[0][0] if taken else None, asked=asked, kept=0,
            shown_errors=list(dict.fromkeys(text for request in requests for text, _ in request.errors)),
            shown_demonstrations=list(dict.fromkeys(text for request in requests for text in request.demonstrations)))
    return plan


def _window(pool: Sequence[Any], turn: int, size: int) -> list[Any]:  # texts, or (text, label) pairs
    """The ``turn``-th window of ``size`` items, cycling through ``pool`` (empty pool: nothing to show)."""
    if not pool:
        return []
    return [pool[(turn * size + offset) % len(pool)] for offset in range(min(size, len(pool)))]


@dataclass(frozen=True)
class SteeringContext:
    """What every steering round shares (sent once, like any unit's context)."""

    recipe: Recipe
    steerer: Steerer
    validation: ValidationSet


@dataclass(frozen=True)
class SteeringRound:
    """Fit the steering student on ``data`` and score it; with a ``budget``, plan round ``round_index``'s calls."""

    round_index: int
    data: tuple[Sample, ...]
    budget: int | None = None


def steering_round(context: SteeringContext, item: SteeringRound) -> tuple[float, RoundPlan | None]:
    """A unit of work: the steering student's macro-F1 on the validation set and, with a budget, the round's plan
    (which needs the fitted student: demonstrations are ranked by its embeddings)."""
    recipe, steerer, validation = context.recipe, context.steerer, context.validation
    steerer.fit([sample.text for sample in item.data], [sample.label for sample in item.data])
    scores = score(recipe, steerer, validation)
    plan = None if item.budget is None else plan_round(recipe, item.round_index, item.budget, scores, steerer,
                                                       validation, item.data)
    return round(scores.macro_f1, 4), plan


def run_feedback(recipe: Recipe, raw: list[Sample], ask: Ask, select: Select, steerer: Steerer,
                 validation: ValidationSet, engine: Engine) -> tuple[list[Sample], FeedbackReport]:
    """The feedback rounds after the first pass (whose uncurated samples are ``raw``); returns every uncurated
    sample (the first pass's, then each round's) and the record of the rounds. Each round's steering student is a
    unit ``engine`` runs (the driver's own engine in the pipeline: a cluster's teacher holds its nodes meanwhile)."""
    config = _config(recipe)
    raw = list(raw)
    context = SteeringContext(recipe, steerer, validation)
    spec = UnitSpec("steering student")

    def steer(item: SteeringRound) -> tuple[float, RoundPlan | None]:
        return gather(engine.map(steering_round, [item], context, spec), 1)[0]

    curve: list[float] = []
    plans: list[RoundPlan] = []
    for round_index, budget in enumerate(round_budgets(recipe), 1):
        macro_f1, plan = steer(SteeringRound(round_index, tuple(select(raw)), budget))
        curve.append(macro_f1)
        raw += ask(plan.requests)
        plans.append(plan)
    final = select(raw)
    curve.append(steer(SteeringRound(len(plans) + 1, tuple(final)))[0])

    kept = Counter((sample.round, sample.language, sample.label) for sample in final)
    rounds = []
    for round_index, plan in enumerate(plans, 1):
        choices = [FeedbackChoice(**{**choice.model_dump(), "kept": kept[(round_index, *cell)]})
                   for cell, choice in plan.choices.items()]
        rounds.append(FeedbackRound(round=round_index, asked=sum(choice.asked for choice in choices),
                                    kept=sum(choice.kept for choice in choices), choices=choices))
    report = FeedbackReport(signal=config.signal, student=steerer.name, validation_texts=len(validation.texts),
                            first_pass_asked=first_pass_asked(recipe), budget=sum(round_budgets(recipe)),
                            learning_curve=curve, rounds=rounds)
    return raw, report


def _config(recipe: Recipe) -> FeedbackConfig:
    if recipe.generation.feedback is None:
        raise ValueError("the recipe has no generation.feedback")
    return recipe.generation.feedback
