"""Every student kind, one entry each: its params model, its class, its card template and how cards describe it.

A recipe names a kind (``students[i].kind``); this registry is the only list of kinds. Its entries name their class
by import path and import it on first use: the recipe is validated (``hfsynth recipes validate``) without importing
setfit, trl or peft, which take seconds to import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hfsynth.errors import RecipeError
from hfsynth.students.params import EncoderParams, InContextParams, SetFitParams, SFTParams, StudentParams

if TYPE_CHECKING:
    from hfsynth.recipe import Recipe
    from hfsynth.students.base import Student


@dataclass(frozen=True)
class StudentKind:
    name: str
    #: What ``students[i].params`` may hold (validated when the recipe loads).
    params: type[StudentParams]
    #: ``module:Class`` of its :class:`~hfsynth.students.base.Student` subclass.
    class_path: str
    #: The model card template (in the package's templates; they extend ``_student_base.md``).
    card_template: str
    #: How cards name the kind: "A **{title}** student for ...".
    title: str
    #: Hub metadata: the library that loads the published folder, and what the model does.
    library_name: str
    pipeline_tag: str
    card_tags: tuple[str, ...] = ()

    def student_class(self) -> type[Student]:
        module, name = self.class_path.split(":")
        return getattr(importlib.import_module(module), name)

    def parse_params(self, params: dict[str, Any], field: str = "params") -> StudentParams:
        """Validate one student's params; the first problem becomes one RecipeError naming ``field.X``
        (without the file name: "field 'students[1].params.lr': unknown encoder parameter ...")."""
        try:
            return self.params.model_validate(params)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join([field, *map(str, error["loc"])])
            if error["type"] == "extra_forbidden":
                known = ", ".join(self.params.model_fields)
                raise RecipeError(f"field {where!r}: unknown {self.name} parameter (known: {known})") from None
            raise RecipeError(f"field {where!r}: {error['msg']} (got {error.get('input')!r})") from None


STUDENT_KINDS: dict[str, StudentKind] = {kind.name: kind for kind in (
    StudentKind(
        name="setfit",
        params=SetFitParams,
        class_path="hfsynth.students.setfit_student:SetFitStudent",
        card_template="student_setfit.md",
        title="SetFit",
        library_name="setfit",
        pipeline_tag="text-classification",
    ),
    StudentKind(
        name="sft",
        params=SFTParams,
        class_path="hfsynth.students.sft_student:SFTStudent",
        card_template="student_sft.md",
        title="LoRA instruction-tuned (TRL SFT)",
        library_name="transformers",
        # A generative LLM that hfsynth uses as a classifier by scoring the labels.
        pipeline_tag="text-generation",
        card_tags=("peft", "lora"),
    ),
    StudentKind(
        name="in-context",
        params=InContextParams,
        class_path="hfsynth.students.in_context_student:InContextStudent",
        card_template="student_in_context.md",
        title="in-context learning",
        library_name="transformers",
        pipeline_tag="text-generation",
    ),
    StudentKind(
        name="encoder",
        params=EncoderParams,
        class_path="hfsynth.students.encoder_student:EncoderStudent",
        card_template="student_encoder.md",
        title="fine-tuned encoder",
        library_name="transformers",
        pipeline_tag="text-classification",
    ),
)}


def student_kind(name: str) -> StudentKind:
    try:
        return STUDENT_KINDS[name]
    except KeyError:
        raise ValueError(f"unknown student kind {name!r} (known: {', '.join(STUDENT_KINDS)})") from None


def parse_params(kind: str, params: dict[str, Any], field: str = "params") -> StudentParams:
    return student_kind(kind).parse_params(params, field)


def check_student_params(recipe: Recipe) -> None:
    """Fail on the first invalid ``students[i].params`` (recipe loading does this; so does training, for recipes
    built in code)."""
    for index, student in enumerate(recipe.students):
        parse_params(student.kind, student.params, f"students[{index}].params")
