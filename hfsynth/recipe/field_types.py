"""Field types that several recipe sections share (:mod:`hfsynth.recipe.schema`, :mod:`hfsynth.recipe.student_params`),
checked when the recipe loads: a value torch, numpy or a trainer would refuse is one line at ``validate``, not a
traceback after the teacher calls were paid for."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

#: torch's device types a recipe may name ("cuda:1"), and "auto" (hfsynth.language_model.device_and_dtype).
_DEVICE = re.compile(r"^(auto|(cpu|cuda|mps|xpu|npu|hpu|mtia)(:\d+)?)$")


def _check_device(name: str) -> str:
    if not _DEVICE.match(name):
        raise ValueError(f"{name!r} is not a device: use auto, cpu, cuda, cuda:N, mps or xpu")
    return name


Device = Annotated[str, AfterValidator(_check_device)]
#: numpy's generators take seeds in [0, 2**32); repeats add their index, so the recipe's seed stays well below.
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


def _check_max_steps(steps: int) -> int:
    if steps == 0 or steps < -1:
        raise ValueError(f"max_steps is -1 (train the epochs in full) or a number of steps from 1, got {steps}")
    return steps


#: Trainers' max_steps where -1 means "the epochs in full": 0 would train nothing and leave no model behind.
MaxSteps = Annotated[int, AfterValidator(_check_max_steps)]
