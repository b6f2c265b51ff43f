"""Every student kind, one entry each: its params model, its class, its card template and how cards describe it.

A recipe names a kind (``students[i].kind``); this registry is the only list of kinds. Its entries name their class
by import path and import it on first use: the recipe is validated (``hfsynth recipes validate``) without importing
setfit, trl or peft, which take seconds to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from hfsynth.recipe.student_params import EncoderParams, InContextParams, SetFitParams, SFTParams, StudentParams


@dataclass(frozen=True)
class StudentKind:
    name: str
    #: What ``students[i].params`` may hold (validated when the recipe loads).
    params: type[StudentParams]
    #: ``module:Class`` of its :class:`~hfsynth.students.base.Student` subclass (imported by
    #: :func:`hfsynth.students.base.student_class`).
    class_path: str
    #: The model card template (in the package's templates; they extend ``_student_base.md``).
    card_template: str
    #: How cards name the kind: "A **{title}** student for ...".
    title: str
    #: Hub metadata: the library that loads the published folder, and what the model does.
    library_name: str
    pipeline_tag: str
    card_tags: tuple[str, ...] = ()

    def parse_params(self, params: Any) -> StudentParams:
        """Validate one student's params (a recipe's ``students[i].params``, a meta file's); the first problem is a
        ValueError naming ``params.X``, which the recipe's error places: "field 'students[1].params.lr': unknown
        encoder parameter (known: ...)"."""
        try:
            return self.params.model_validate(params)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(["params", *map(str, error["loc"])])
            if error["type"] == "extra_forbidden":
                known = ", ".join(self.params.model_fields)
                raise ValueError(f"{where}: unknown {self.name} parameter (known: {known})") from None
            if error["type"] == "value_error":  # hfsynth's own check: its message names the value
                raise ValueError(f"{where}: {error['msg'].removeprefix('Value error, ')}") from None
            raise ValueError(f"{where}: {error['msg']} (got {error.get('input')!r})") from None


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
