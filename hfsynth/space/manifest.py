"""What a staged Space's app reads besides its code: the task, the teacher, where each student comes from, the
evaluation files and example texts (``SpaceFolder.manifest``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import parse_recipe

#: The name of the teacher's column; students may not take it.
TEACHER_NAME = "teacher"


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
        return parse_recipe(self.recipe, source="the Space manifest")

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")


def load_manifest(path: Path) -> SpaceManifest:
    return SpaceManifest.model_validate_json(Path(path).read_text(encoding="utf-8"))
