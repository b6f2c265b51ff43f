"""Staging: a run folder becomes a Space folder (``hfsynth.runs.folder.SpaceFolder``).

The folder holds the Space's entry files (the project's ``spaces/compare/``, shipped in the package as
``hfsynth.space_template``), its card, the manifest the app reads, and the recipe. Locally the manifest points at the
run's students and evaluation files where they are; for the Hub, students published under their recipe repo ids
(:func:`hfsynth.repo_ids.student_repo_id`, the id ``hfsynth publish`` pushes to) are named by those ids and the
others, like the evaluation files, are copied in.
"""

from __future__ import annotations

import importlib.resources
import os
import random
import re
import shutil
from pathlib import Path

from hfsynth.cards.render import space_card
from hfsynth.embedded import EMBEDDED_MODELS, base_model_id
from hfsynth.errors import HfsynthError, RecipeError
from hfsynth.realdata import load_labelled_set
from hfsynth.recipe.schema import Recipe, StudentConfig, TeacherConfig
from hfsynth.recipes.files import load_detached_recipe
from hfsynth.repo_ids import dataset_repo_id, student_repo_id, teacher_public_id
from hfsynth.runs.folder import EvalFolder, RunFolder, SpaceFolder
from hfsynth.space.manifest import ExampleText, SpaceManifest, StudentSource
from hfsynth.students.base import Student, read_meta

#: The package that holds the Space's entry files (``spaces/compare/`` in the project), copied unchanged.
SPACE_TEMPLATE_PACKAGE = "hfsynth.space_template"
SPACE_ENTRY_FILES = (SpaceFolder.APP_FILE, SpaceFolder.REQUIREMENTS_FILE)
EXAMPLES_PER_LANGUAGE = 5
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def recipe_from_run(run_dir: Path) -> Recipe:
    """The recipe a run was made with (``RUN/dataset/recipe.yaml``).

    Its relative data paths were written relative to the original recipe file, which may have lived anywhere; they
    are tried against the run's dataset folder, then as :func:`hfsynth.recipes.files.load_detached_recipe` says.
    """
    path = RunFolder(run_dir).dataset.recipe
    if not path.is_file():
        raise HfsynthError(f"{run_dir}: not a run folder ({path} is missing): generate the dataset first")
    try:
        return load_detached_recipe(path, str(path), path.parent)
    except RecipeError as error:
        raise HfsynthError(f"cannot read the run's recipe: {error}: its data paths are relative to the folder the "
                           "recipe was in (or the current one): run the command from there") from None


def pick_examples(recipe: Recipe, per_language: int = EXAMPLES_PER_LANGUAGE) -> list[ExampleText]:
    """A few texts per language from the real evaluation sets, as many different gold labels as possible."""
    examples: list[ExampleText] = []
    covered: set[str] = set()
    for seed_set in recipe.evaluation.sets:
        if seed_set.language in covered:
            continue
        covered.add(seed_set.language)
        rows = load_labelled_set(seed_set, recipe.label_names)
        order = list(range(len(rows)))
        random.Random(recipe.evaluation.seed).shuffle(order)
        by_label: dict[str, list[int]] = {}
        for index in order:
            by_label.setdefault(rows[index]["label"], []).append(index)
        # Round-robin over the labels, so that the examples show different labels before any label twice.
        picked: list[int] = []
        while len(picked) < min(per_language, len(rows)):
            for indices in by_label.values():
                if indices and len(picked) < per_language:
                    picked.append(indices.pop(0))
        examples += [ExampleText(text=rows[i]["text"], language=seed_set.language, label=rows[i]["label"])
                     for i in picked]
    return examples


def _space_teacher(config: TeacherConfig, for_hub: bool) -> TeacherConfig:
    """On the Hub the Space downloads the teacher by its Hub id: embedded names only exist in this installation."""
    if not for_hub or config.backend == "remote":
        return config
    if config.model in EMBEDDED_MODELS:
        return config.model_copy(update={"model": EMBEDDED_MODELS[config.model].hub_id})
    if Path(config.model).expanduser().is_dir():
        raise HfsynthError(f"the teacher is a local folder ({config.model}): push it to the Hub and name its id")
    return config


def published_student_id(recipe: Recipe, student: StudentConfig) -> str | None:
    """The Hub id ``hfsynth publish`` pushed the student to, if the Hub has it."""
    from huggingface_hub import HfApi

    repo_id = student_repo_id(recipe, student)
    return repo_id if HfApi().repo_exists(repo_id) else None


def _student_base_model(folder: Path) -> str | None:

    meta = read_meta(folder)
    return meta.base_model if meta else None


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _copy_entry_files(space: SpaceFolder) -> None:
    template = importlib.resources.files(SPACE_TEMPLATE_PACKAGE)
    for name in SPACE_ENTRY_FILES:
        (space.root / name).write_bytes(template.joinpath(name).read_bytes())


def stage_space(recipe: Recipe, run_dir: Path, space_dir: Path, for_hub: bool) -> SpaceManifest:
    """Write the Space folder for ``run_dir`` into ``space_dir`` (emptied first) and return its manifest.

    Locally (``for_hub=False``) the manifest points at the run's student and evaluation files where they are. For
    the Hub, published students are named by their Hub ids, the others are copied into the Space, as are the
    evaluation files; a student that is neither trained nor published is an error there.
    """

    run_folder, space = RunFolder(run_dir), SpaceFolder(space_dir)
    if space_dir.exists():
        shutil.rmtree(space_dir)
    space_dir.mkdir(parents=True)
    _copy_entry_files(space)

    teacher = _space_teacher(recipe.teacher, for_hub)
    models = [teacher_public_id(teacher)]
    students: list[StudentSource] = []
    for config in recipe.students:
        folder = run_folder.student(config.name).root
        hub_id = published_student_id(recipe, config) if for_hub else None
        if hub_id is not None:
            students.append(StudentSource(name=config.name, kind=config.kind, hub_id=hub_id))
            models.append(hub_id)
            continue
        if for_hub:
            if read_meta(folder) is None:
                raise HfsynthError(f"student {config.name!r} is neither trained ({folder}) nor published on the Hub")
            copy = space.student(config.name).root
            # What a published repo would hold: an SFT student's merged model too, so that the Space needs no base
            # model by an embedded name that only exists in this installation.
            Student.release_any(folder, copy)
            folder = copy
        # A missing local student stays listed: the app shows why it cannot load in its column.
        students.append(StudentSource(name=config.name, kind=config.kind, path=_relative(folder, space_dir)))
        models.append(_student_base_model(folder) or base_model_id(config.model))

    # The evaluation files the Space shows: where they are, or (for the Hub) their copies in the Space.
    shown: EvalFolder = run_folder.eval
    if for_hub and any(path.is_file() for path in _shown_files(shown)):
        space.eval.root.mkdir()
        for original, copy in zip(_shown_files(shown), _shown_files(space.eval), strict=True):
            if original.is_file():
                shutil.copy2(original, copy)
        shown = space.eval

    recipe_fields = {"name", "description", "task", "labels", "languages", "dataset"}
    task_recipe = recipe.model_dump(mode="json", include=recipe_fields, exclude_defaults=True)
    task_recipe["teacher"] = teacher.model_dump(mode="json", exclude_defaults=True)
    datasets = [dataset_repo_id(recipe)]
    # The real test sets: Hub datasets, or the Hub datasets local files are copies of.
    datasets += [seed_set.hub_id or seed_set.dataset_id for seed_set in recipe.evaluation.sets]
    manifest = SpaceManifest(
        title=f"{recipe.name}: teacher vs students",
        recipe=task_recipe,
        students=students,
        results=_relative(shown.results, space_dir) if shown.results.is_file() else None,
        plots=[_relative(plot, space_dir) for plot in shown.plots if plot.is_file()],
        examples=pick_examples(recipe),
        models=list(dict.fromkeys(model for model in models if _HUB_ID.match(model))),
        datasets=list(dict.fromkeys(dataset for dataset in datasets if dataset and _HUB_ID.match(dataset))),
    )
    manifest.save(space.manifest)
    # The recipe as the user wrote it, for provenance (machine-specific resolved paths stay out).
    space.recipe.write_text(recipe.source_text, encoding="utf-8")
    space_card(recipe, manifest).save(space.card)
    return manifest


def _shown_files(folder: EvalFolder) -> tuple[Path, ...]:
    return (folder.results, *folder.plots)
