"""The Jinja templates hfsynth renders (cards and the evaluation report), shipped in the package.

They live in the project's top-level ``cards/`` folder, installed as the package ``hfsynth.card_templates`` (see
``pyproject.toml``), and are found through ``importlib.resources``, so an installed wheel renders them as a source
checkout does.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE_PACKAGE = "hfsynth.card_templates"


def template_path(name: str) -> Path:
    """A packaged template's file (the package is installed as plain files, never zipped)."""
    return Path(str(importlib.resources.files(TEMPLATE_PACKAGE).joinpath(name)))


@functools.cache
def _environment(folder: Path) -> jinja2.Environment:
    return jinja2.Environment(
        # Templates {% include %} and {% extend %} their neighbours.
        loader=jinja2.FileSystemLoader(str(folder)),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
    )


def render_file(path: Path, **values: Any) -> str:
    path = Path(path)
    return _environment(path.parent.resolve()).get_template(path.name).render(**values)


def render(name: str, **values: Any) -> str:
    """Render the packaged template ``name``."""
    return render_file(template_path(name), **values)
