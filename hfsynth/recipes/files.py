"""Reading recipe files: YAML into a validated :class:`~hfsynth.recipe.schema.Recipe`, every problem as one
:class:`~hfsynth.errors.RecipeError` line naming the file and the field.

A file's relative data paths resolve against its folder; a detached recipe (one downloaded from the Hub, or the copy
a run keeps in ``RUN/dataset/recipe.yaml``) no longer sits beside the files its paths were written against, so this
project's ``recipes/`` folder and the current directory are tried too (:func:`load_detached_recipe`). Beyond the
schema, a file gets the checks only a file can have: its data paths exist, its model names resolve, its Hub repo ids
are valid, and its data files, labels, engine and planned work (:mod:`hfsynth.recipes.checks`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hfsynth.embedded import check_model_name
from hfsynth.errors import RecipeError
from hfsynth.recipe.schema import Recipe, SeedSet
from hfsynth.recipe.student_params import InContextParams
from hfsynth.recipes.checks import check_recipe
from hfsynth.repo_ids import dataset_repo_id, repo_id_problem, space_repo_id, student_repo_id


def _field_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


#: A cross-field check names its field first: "generation.seeds: strategy few-shot has no seeds for ...".
_NAMED_FIELD = re.compile(r"^([A-Za-z_]+(?:\.[A-Za-z_]+|\[\d+\])*): (.+)$", re.DOTALL)


def _describe(error: dict[str, Any]) -> str:
    field = _field_path(tuple(error["loc"]))
    kind = error["type"]
    named = _NAMED_FIELD.match(error["msg"].removeprefix("Value error, ")) if kind == "value_error" else None
    if named:
        inner = named.group(1)
        field = inner if not error["loc"] else f"{field}.{inner}"
        return f"field {field!r}: {named.group(2)}"
    if kind == "extra_forbidden":
        return f"unknown field {field!r}"
    if kind == "missing":
        return f"missing field {field!r}"
    message = error["msg"].removeprefix("Value error, ")
    if kind in {"literal_error", "string_type", "int_parsing", "float_parsing", "bool_parsing", "list_type",
                "dict_type", "model_type", "too_short", "greater_than_equal", "less_than_equal", "string_too_short",
                "string_pattern_mismatch", "greater_than", "less_than", "int_type", "float_type", "bool_type",
                "finite_number"}:
        return f"field {field!r}: {message} (got {error.get('input')!r})"
    return f"field {field!r}: {message}"


def parse_recipe(data: Any, source: str = "<recipe>", base_dir: Path | None = None) -> Recipe:
    """Validate already-parsed YAML. ``base_dir`` resolves relative seed/eval paths and checks they exist."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping, got {type(data).__name__}")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise RecipeError(f"{source}: {_describe(first)}{more}") from None
    if base_dir is not None:
        recipe = _resolve_local_paths(recipe, base_dir, source)
        try:
            recipe.check_feedback()  # again on resolved paths: "../x.jsonl" and "/abs/x.jsonl" are the same file
        except ValueError as error:
            field, _, problem = str(error).partition(": ")
            raise RecipeError(f"{source}: field '{field}': {problem}") from None
    _check_model_names(recipe, source)
    _check_repo_ids(recipe, source)
    if base_dir is not None:  # a recipe file: its data files, labels, installed engine and planned work
        check_recipe(recipe, source)
    return recipe


def _resolve_local_paths(recipe: Recipe, base_dir: Path, source: str) -> Recipe:
    """Make seed/eval paths absolute (relative to the recipe) and fail early on files that do not exist."""

    def resolve(sets: list[SeedSet], field: str) -> list[SeedSet]:
        resolved = []
        for index, seed_set in enumerate(sets):
            if seed_set.path is not None:
                try:
                    path = (base_dir / seed_set.path).resolve()
                except (OSError, RuntimeError) as error:  # RuntimeError: a symbolic link loop (Python < 3.13)
                    raise RecipeError(f"{source}: field '{field}[{index}].path': cannot follow {seed_set.path}: "
                                      f"{getattr(error, 'strerror', None) or error}") from None
                if not path.is_file():
                    raise RecipeError(f"{source}: field '{field}[{index}].path': file not found: {seed_set.path}")
                if path.stat().st_size == 0:
                    raise RecipeError(f"{source}: field '{field}[{index}].path': the file is empty: {seed_set.path}")
                seed_set = seed_set.model_copy(update={"path": str(path)})
            resolved.append(seed_set)
        return resolved

    update: dict[str, object] = {"seeds": resolve(recipe.generation.seeds, "generation.seeds")}
    feedback = recipe.generation.feedback
    if feedback is not None:
        sets = resolve(feedback.validation.sets, "generation.feedback.validation.sets")
        update["feedback"] = feedback.model_copy(update={"validation": feedback.validation.model_copy(
            update={"sets": sets})})
    generation = recipe.generation.model_copy(update=update)
    reference = recipe.evaluation.reference.model_copy(
        update={"sets": resolve(recipe.evaluation.reference.sets, "evaluation.reference.sets")}
    )
    evaluation = recipe.evaluation.model_copy(
        update={"sets": resolve(recipe.evaluation.sets, "evaluation.sets"), "reference": reference}
    )
    return recipe.model_copy(update={"generation": generation, "evaluation": evaluation})


def _check_model_names(recipe: Recipe, source: str) -> None:
    fields = [("teacher.model", recipe.teacher.model)] if recipe.teacher.backend == "local" else []
    fields += [(f"students[{i}].model", student.model) for i, student in enumerate(recipe.students)]
    fields += [(f"students[{i}].params.embedding_model", student.params.embedding_model)
               for i, student in enumerate(recipe.students) if isinstance(student.params, InContextParams)]
    if recipe.quality.embedding_model is not None:
        fields.append(("quality.embedding_model", recipe.quality.embedding_model))
    for field, name in fields:
        problem = check_model_name(name)
        if problem:
            raise RecipeError(f"{source}: field '{field}': {problem}")


def _check_repo_ids(recipe: Recipe, source: str) -> None:
    """Repo ids are checked now, with huggingface_hub's own rules and the defaults hfsynth would push to
    (:mod:`hfsynth.repo_ids`), not after hours of generation at push time."""
    organization = recipe.publish.organization
    if organization is not None and "/" in organization:
        raise RecipeError(f"{source}: field 'publish.organization': {organization!r} is a namespace: it may not "
                          "contain '/'")
    ids = [("dataset.repo_id", dataset_repo_id(recipe)), ("publish.space_repo_id", space_repo_id(recipe))]
    ids += [(f"students[{index}].repo_id", student_repo_id(recipe, student))
            for index, student in enumerate(recipe.students)]
    for field, repo_id in ids:
        problem = repo_id_problem(repo_id)
        if problem:
            raise RecipeError(f"{source}: field {field!r}: {repo_id!r} is not a valid Hub repo id ({problem})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping: PyYAML would keep the last one silently, and the
    recipe run would not be the one its author reads."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_recipe(path: str | Path, base_dir: Path | None = None, display_name: str | None = None) -> Recipe:
    """Read and validate a recipe file. Every problem becomes one RecipeError line naming the file and field.

    ``base_dir`` (default: the recipe's folder) resolves relative data paths; ``display_name`` is how messages name
    the file (e.g. the ``hf://`` address of a downloaded recipe).
    """
    path = Path(path)
    name = display_name or str(path)
    if not path.is_file():
        raise RecipeError(f"{name}: recipe file not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RecipeError(f"{name}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{name}: not a UTF-8 text file") from None
    recipe = parse_recipe(data, source=name, base_dir=base_dir or path.parent)
    recipe._source_text = text
    return recipe


#: The folder this project's recipes live in, relative to a checkout's root (where commands are run from).
RECIPES_DIR = Path("recipes")


def detached_base_dirs(*first: Path) -> list[Path]:
    """The folders a detached recipe's data paths are tried against, in order: ``first``, ./recipes, the cwd."""
    return [*first, *([RECIPES_DIR] if RECIPES_DIR.is_dir() else []), Path.cwd()]


def load_detached_recipe(path: Path, display_name: str, *first: Path) -> Recipe:
    """The recipe at ``path`` with its data paths resolved against the first of :func:`detached_base_dirs` that has
    them all; when none has, the error of the first one tried (the most likely home)."""
    problems: list[RecipeError] = []
    for base_dir in detached_base_dirs(*first):
        try:
            return load_recipe(path, base_dir=base_dir, display_name=display_name)
        except RecipeError as error:
            problems.append(error)
    raise problems[0]
