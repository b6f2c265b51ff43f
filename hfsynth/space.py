"""The comparison Space: the teacher and its students side by side in one Gradio app (``spaces/compare/``).

A run becomes a Space folder: the app files from ``spaces/compare/``, a README rendered from
``cards/space_readme.md`` and ``hfsynth_space.json``, the manifest the app reads (the task, labels, languages and
teacher; where each student comes from; the evaluation results and plots; example texts from the real test sets with
their gold labels). ``serve`` stages that folder inside the run and launches the app locally; ``deploy`` stages it in
a temporary folder, copies in what the Hub does not already have, and pushes it as a Space repo.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from hfsynth.embedded import EMBEDDED_MODELS, base_model_id
from hfsynth.errors import HfsynthError, RecipeError
from hfsynth.recipe import Recipe, TeacherConfig, parse_recipe
from hfsynth.run_folder import CHECKPOINTS_DIR, EvalFolder, RunFolder, SpaceFolder

if TYPE_CHECKING:
    import gradio as gr
    from huggingface_hub import SpaceCard

logger = logging.getLogger(__name__)

#: What the Space runs, as it is in the repository: copied unchanged into every staged Space.
SPACE_TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "spaces" / "compare"
SPACE_APP_FILES = (SpaceFolder.APP_FILE, SpaceFolder.REQUIREMENTS_FILE)
#: The name of the teacher's column; students may not take it.
TEACHER_NAME = "teacher"
EXAMPLES_PER_LANGUAGE = 5
# Hub Spaces reject longer short descriptions.
_SHORT_DESCRIPTION_LIMIT = 60
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudentSource(_Strict):
    name: str
    kind: str
    # Exactly one: a student folder relative to the manifest, or the Hub id it was published under.
    path: str | None = None
    hub_id: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> StudentSource:
        if (self.path is None) == (self.hub_id is None):
            raise ValueError(f"student {self.name!r}: give exactly one of path or hub_id")
        if self.name == TEACHER_NAME:
            raise ValueError(f"a student may not be called {TEACHER_NAME!r}: that is the teacher's column")
        return self


class ExampleText(_Strict):
    text: str
    language: str
    label: str  # the gold label from the real test set


class SpaceManifest(_Strict):
    """Everything the app needs that is not code; paths are relative to the manifest's folder."""

    format: Literal[1] = 1
    title: str
    #: The recipe's name, task, labels, languages, teacher and dataset: what prompts and the teacher need.
    recipe: dict[str, Any]
    students: list[StudentSource]
    results: str | None = None
    plots: list[str] = []
    examples: list[ExampleText] = []
    #: Hub ids for the Space card's metadata.
    models: list[str] = []
    datasets: list[str] = []

    def task_recipe(self) -> Recipe:
        return parse_recipe(self.recipe, source=SpaceFolder(Path()).manifest.name)


def load_manifest(path: Path) -> SpaceManifest:
    return SpaceManifest.model_validate_json(Path(path).read_text(encoding="utf-8"))


# --- staging -------------------------------------------------------------------------------------------------------


def recipe_from_run(run_dir: Path) -> Recipe:
    """The recipe a run was made with (``RUN/dataset/recipe.yaml``).

    Its relative data paths were written relative to the original recipe file, which may have lived anywhere; they
    are tried against the run's dataset folder, then ``./recipes`` (how this project's recipes are written), then
    the current directory.
    """
    path = RunFolder(run_dir).dataset.recipe
    if not path.is_file():
        raise HfsynthError(f"{run_dir}: not a run folder ({path} is missing): generate the dataset first")
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    problems = []
    for base_dir in (path.parent, Path("recipes"), Path.cwd()):
        try:
            recipe = parse_recipe(data, source=str(path), base_dir=base_dir)
        except RecipeError as error:
            problems.append(str(error))
            continue
        recipe._source_text = text
        return recipe
    raise HfsynthError(f"cannot resolve the run's recipe; pass the recipe file instead ({problems[0]})")


def pick_examples(recipe: Recipe, per_language: int = EXAMPLES_PER_LANGUAGE) -> list[ExampleText]:
    """A few texts per language from the real evaluation sets, as many different gold labels as possible."""
    from hfsynth.realdata import load_labelled_set

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


def published_student_id(recipe: Recipe, name: str) -> str | None:
    """The Hub id a recipe student was published under, if the recipe names one and the Hub has it."""
    from huggingface_hub import HfApi

    from hfsynth.hub.publish import qualified_repo_id

    config = next(student for student in recipe.students if student.name == name)
    if config.repo_id is None:
        return None
    repo_id = qualified_repo_id(config.repo_id, recipe.publish.organization)
    return repo_id if HfApi().repo_exists(repo_id) else None


def _student_base_model(folder: Path) -> str | None:
    from hfsynth.students.base import read_meta

    meta = read_meta(folder)
    return meta.base_model if meta else None


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def stage_space(recipe: Recipe, run_dir: Path, space_dir: Path, for_hub: bool) -> SpaceManifest:
    """Write the Space folder for ``run_dir`` into ``space_dir`` (emptied first) and return its manifest.

    Locally (``for_hub=False``) the manifest points at the run's student and evaluation files where they are. For
    the Hub, students published under the recipe's repo ids are named by those ids, the others are copied into the
    Space, as are the evaluation files; a student that is neither trained nor published is an error there.
    """
    from hfsynth.hub.publish import qualified_repo_id
    from hfsynth.students.base import read_meta

    run_folder, space = RunFolder(run_dir), SpaceFolder(space_dir)
    if space_dir.exists():
        shutil.rmtree(space_dir)
    space_dir.mkdir(parents=True)
    for name in SPACE_APP_FILES:
        shutil.copy2(SPACE_TEMPLATE_DIR / name, space_dir / name)

    teacher = _space_teacher(recipe.teacher, for_hub)
    models = [teacher.model if teacher.backend == "remote" else base_model_id(teacher.model)]
    students: list[StudentSource] = []
    for config in recipe.students:
        folder = run_folder.student(config.name).root
        hub_id = published_student_id(recipe, config.name) if for_hub else None
        if hub_id is not None:
            students.append(StudentSource(name=config.name, kind=config.kind, hub_id=hub_id))
            models.append(hub_id)
            continue
        if for_hub:
            if read_meta(folder) is None:
                raise HfsynthError(f"student {config.name!r} is neither trained ({folder}) nor published on the Hub")
            copy = space.student(config.name).root
            shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(CHECKPOINTS_DIR))
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
    datasets = [qualified_repo_id(recipe.dataset.repo_id, recipe.publish.organization)]
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
    space.manifest.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    # The recipe as the user wrote it, for provenance (machine-specific resolved paths stay out).
    space.recipe.write_text(recipe.source_text, encoding="utf-8")
    space_card(recipe, manifest).save(space.card)
    return manifest


def _shown_files(folder: EvalFolder) -> tuple[Path, ...]:
    return (folder.results, *folder.plots)


def space_card(recipe: Recipe, manifest: SpaceManifest) -> SpaceCard:
    """The Space's README: Hub front matter (sdk, app file, models, datasets) and what the Space shows."""
    import gradio
    from huggingface_hub import SpaceCard, SpaceCardData

    from hfsynth.cards import TAGS, render
    from hfsynth.languages import language_name

    short_description = f"Teacher LLM vs distilled students: {recipe.task.name}"[:_SHORT_DESCRIPTION_LIMIT]
    card_data = SpaceCardData(
        title=manifest.title,
        sdk="gradio",
        sdk_version=gradio.__version__,
        app_file=SpaceFolder.APP_FILE,
        license="apache-2.0",
        models=manifest.models or None,
        datasets=manifest.datasets or None,
        tags=[*TAGS, recipe.task.name],
        # Hub Space settings without a named parameter in SpaceCardData.
        emoji="🧑‍🏫",
        colorFrom="indigo",
        colorTo="green",
        pinned=False,
        short_description=short_description,
    )
    content = render(
        "space_readme.md",
        card_data=card_data.to_yaml(),
        manifest=manifest,
        recipe=recipe,
        teacher=manifest.recipe["teacher"]["model"],
        language_names=[f"{language_name(code)} (`{code}`)" for code in recipe.languages],
    )
    return SpaceCard(content)


# --- serve and deploy ----------------------------------------------------------------------------------------------


def load_app(space_dir: Path) -> ModuleType:
    """Import a staged Space's ``app.py`` (a folder, not a package)."""
    name = "hfsynth_space_app"
    spec = importlib.util.spec_from_file_location(name, SpaceFolder(space_dir).app)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses resolve the module's string annotations through sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def serve(
    run_dir: Path, port: int | None = None, recipe: Recipe | None = None, host: str = "127.0.0.1", block: bool = True
) -> gr.Blocks:
    """Stage the Space in ``RUN/space/`` and serve it on ``host:port`` (``port`` None: Gradio's first free one).

    ``recipe`` defaults to the run's own. With ``block`` the call returns when the server is stopped (Ctrl-C);
    otherwise it returns at once with the app running (``.local_url``; ``.close()`` stops it).
    """
    run_dir = Path(run_dir)
    recipe = recipe or recipe_from_run(run_dir)
    space = RunFolder(run_dir).space
    stage_space(recipe, run_dir, space.root, for_hub=False)
    demo = load_app(space.root).build_demo(space.manifest)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block)
    return demo


def default_space_repo_id(recipe: Recipe) -> str:
    from hfsynth.hub.publish import qualified_repo_id

    return qualified_repo_id(recipe.publish.space_repo_id or f"{recipe.name}-compare", recipe.publish.organization)


def deploy(recipe: Recipe, run_dir: Path, repo_id: str | None = None, private: bool | None = None) -> str:
    """Push the run's Space as a Gradio Space repo (``repo_id`` defaults to ``publish.space_repo_id``); return its URL.

    The repo ends up holding exactly the staged folder: files an earlier deploy left (say, the copy of a student
    that has since been published) are deleted in the same commit. The token comes from huggingface_hub's usual
    sources (``HF_TOKEN``, the stored login).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from hfsynth.hub.publish import describe_hub_error

    repo_id = repo_id or default_space_repo_id(recipe)
    private = recipe.publish.private if private is None else private
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="hfsynth-space-") as staging:
        space_dir = Path(staging) / "space"  # any name: its contents become the repo
        try:
            # Staging asks the Hub which students are published, so its errors are Hub errors too.
            manifest = stage_space(recipe, Path(run_dir), space_dir, for_hub=True)
            logger.info("pushing Space %s: %d student(s), %d example(s)", repo_id, len(manifest.students),
                        len(manifest.examples))
            url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=space_dir, repo_type="space", delete_patterns="*",
                              commit_message=f"hfsynth: {manifest.title}")
        except (HfHubHTTPError, OSError) as error:
            raise HfsynthError(f"push of the Space failed: {describe_hub_error(error, repo_id)}") from None
    return str(url)
