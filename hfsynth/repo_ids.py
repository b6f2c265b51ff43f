"""The Hub ids a recipe's artifacts go by, each rule in one function: publishing, the Space and the cards all ask here.

A recipe may leave an id unset (a student's ``repo_id``, ``publish.space_repo_id``); the default is derived from the
recipe's name. An id without a namespace gets ``publish.organization``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hfsynth.embedded import base_model_id

if TYPE_CHECKING:
    from hfsynth.recipe.schema import Recipe, StudentConfig, TeacherConfig


def repo_id_problem(repo_id: str) -> str | None:
    """Why huggingface_hub would refuse ``repo_id`` (its own rules, checked before any work), or None."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        return str(error).split(":")[0].replace(" Use `repo_type` argument if needed.", "")
    return None


def qualified_repo_id(repo_id: str, organization: str | None) -> str:
    """``name`` becomes ``organization/name``; an id with a namespace stays as it is."""
    if "/" in repo_id or not organization:
        return repo_id
    return f"{organization}/{repo_id}"


def dataset_repo_id(recipe: Recipe) -> str:
    return qualified_repo_id(recipe.dataset.repo_id, recipe.publish.organization)


def student_repo_id(recipe: Recipe, student: StudentConfig) -> str:
    """Where ``hfsynth publish`` pushes a student, and so where ``hfsynth space deploy`` looks for it."""
    return qualified_repo_id(student.repo_id or f"{recipe.name}-{student.name}", recipe.publish.organization)


def space_repo_id(recipe: Recipe) -> str:
    return qualified_repo_id(recipe.publish.space_repo_id or f"{recipe.name}-compare", recipe.publish.organization)


def teacher_public_id(teacher: TeacherConfig) -> str:
    """The teacher as results and cards name it: a local model's Hub id (never a machine's folder), or the model name
    a remote endpoint serves."""
    return teacher.model if teacher.backend == "remote" else base_model_id(teacher.model)
