"""Where the relative data paths of a recipe read away from its own folder resolve: one rule for every such reader.

A recipe downloaded from the Hub (``hf://...``) or the copy a run keeps (``RUN/dataset/recipe.yaml``) no longer sits
beside the files its paths were written against. This project's recipes are written relative to its ``recipes/``
folder, so that folder is tried (when the current directory has one), then the current directory itself.
"""

from __future__ import annotations

from pathlib import Path

from hfsynth.errors import RecipeError
from hfsynth.recipe import Recipe, load_recipe

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
