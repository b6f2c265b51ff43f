"""The Jinja templates hfsynth renders (cards and the evaluation report), shipped in the package.

They live in the project's top-level ``cards/`` folder, installed as the package ``hfsynth.card_templates`` (see
``pyproject.toml``), and are read through ``importlib.resources``, so an installed wheel renders them as a source
checkout does.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import jinja2

TEMPLATE_PACKAGE = "hfsynth.card_templates"


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATE_PACKAGE, ""),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
    )


def render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def template_text(template: str) -> str:
    """A template's source, for huggingface_hub card classes that render their own default template."""
    return importlib.resources.files(TEMPLATE_PACKAGE).joinpath(template).read_text(encoding="utf-8")
