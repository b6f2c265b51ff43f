"""Recipe checks that go beyond the schema in :mod:`hfsynth.recipe.schema`: the data files, the labels, what is
installed and how much work the recipe plans. ``hfsynth recipes validate`` and every command run them when a recipe file
is loaded (:func:`hfsynth.recipes.files.parse_recipe` with a ``base_dir``), so a mistake costs one line before any work,
not a traceback after the teacher calls were paid for.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec

from hfsynth.errors import HfsynthError, RecipeError
from hfsynth.model_shapes import meta_models, missing_target_modules
from hfsynth.realdata import load_labelled_set
from hfsynth.recipe.schema import Recipe, SeedSet
from hfsynth.recipe.student_params import SFTParams
from hfsynth.training import planned_runs

#: Upper bounds on what multiplies work, each far above the shipped recipes (the Pecher et al. recipes plan 760
#: trainings and 8.4 million bootstrap scores): trainings a recipe plans, and bootstrap resamples x scored models x
#: test languages (a bootstrap score is a few microseconds of numpy; its index arrays are held per language).
MAX_TRAINING_RUNS = 10_000
MAX_BOOTSTRAP_DRAWS = 500_000_000


def check_recipe(recipe: Recipe, source: str) -> None:
    """Every check of this module, in order; the first problem raises a RecipeError naming ``source`` and the field."""
    for check in (_check_labels, _check_engine, _check_planned_work, _check_data_files, _check_lora_targets):
        problem = check(recipe)
        if problem:
            raise RecipeError(f"{source}: {problem}")


def _check_labels(recipe: Recipe) -> str | None:
    seen: dict[str, str] = {}
    for index, name in enumerate(recipe.label_names):
        if not name.strip():
            return f"field 'labels[{index}].name': a label name must have a visible character, got {name!r}"
        # Labels equal but for case or surrounding spaces are one label to a reader and to the teacher's answers.
        key = name.strip().casefold()
        if key in seen:
            return (f"field 'labels[{index}].name': {name!r} differs from label {seen[key]!r} only in case or "
                    "spaces: give the labels distinct names")
        seen[key] = name
    return None


def _check_engine(recipe: Recipe) -> str | None:
    # find_spec, not import: importing Ray takes seconds and starts threads.
    if recipe.execution.engine == "ray" and find_spec("ray") is None:
        return ("field 'execution.engine': 'ray' needs Ray, which is not installed: pip install 'hfsynth[ray]' "
                "(or use engine: local)")
    return None


def _check_planned_work(recipe: Recipe) -> str | None:
    from pathlib import Path


    runs = len(planned_runs(recipe, Path(".")))  # the plan only: nothing is read or written
    if runs > MAX_TRAINING_RUNS:
        return (f"field 'students': the plan is {runs:,} trainings (students x (1 + train_sizes) x repeats, twice "
                f"for reference students), more than {MAX_TRAINING_RUNS:,}: lower repeats or train_sizes")
    languages = len({seed_set.language for seed_set in recipe.evaluation.sets})
    resamples = recipe.evaluation.bootstrap_resamples
    draws = resamples * (runs + 1) * languages  # every run and the teacher, per test language
    if draws > MAX_BOOTSTRAP_DRAWS:
        return (f"field 'evaluation.bootstrap_resamples': {resamples:,} resamples x {runs + 1:,} scored models x "
                f"{languages} test language(s) is {draws:,} bootstrap scores, more than {MAX_BOOTSTRAP_DRAWS:,}: "
                "lower bootstrap_resamples")
    return None


def _data_sets(recipe: Recipe) -> Iterator[tuple[str, SeedSet]]:
    for field, sets in (("generation.seeds", recipe.generation.seeds), ("evaluation.sets", recipe.evaluation.sets),
                        ("evaluation.reference.sets", recipe.evaluation.reference.sets),
                        ("generation.feedback.validation.sets",
                         recipe.generation.feedback.validation.sets if recipe.generation.feedback else [])):
        for index, seed_set in enumerate(sets):
            yield f"{field}[{index}]", seed_set


def _check_data_files(recipe: Recipe) -> str | None:
    """Each local seed, test and reference file read as the later commands read it (``datasets``): blank or cut
    short, missing columns, empty or non-text cells, labels the recipe does not know. Hub datasets (``hub_id``) are
    read when a command needs them: validating them would download them."""

    for field, seed_set in _data_sets(recipe):
        if seed_set.path is None:
            continue
        try:
            load_labelled_set(seed_set, recipe.label_names)
        except HfsynthError as error:
            return f"field '{field}.path': {error}"
    return None


def _check_lora_targets(recipe: Recipe) -> str | None:
    """A LoRA student's named target modules exist in its model (peft would fail when training starts). Checked on
    the model built from its config alone; a model whose config cannot be reached here within seconds is checked by
    peft."""
    named = [(index, student) for index, student in enumerate(recipe.students)
             if isinstance(student.params, SFTParams) and not isinstance(student.params.target_modules, str)]
    models = meta_models([student.model for _, student in named]) if named else {}
    for index, student in named:
        model, params = models[student.model], student.params
        missing = missing_target_modules(model, params.target_modules) if model is not None else []
        if missing:
            return (f"field 'students[{index}].params.target_modules': {student.model} has no module named "
                    f"{', '.join(missing)} (use 'all-linear' or names such as q_proj, v_proj)")
    return None
