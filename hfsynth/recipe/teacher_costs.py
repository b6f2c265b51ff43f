"""What the teacher's calls may cost: ``teacher.pricing`` and ``teacher.budget`` (applied by
:mod:`hfsynth.teachers.spending`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from hfsynth.recipe.execution import StrictSection


class Pricing(StrictSection):
    """What the teacher's provider charges per million tokens (its price list): every output that shows tokens shows
    their cost beside them."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    currency: str = Field("USD", min_length=1, max_length=8)


class Budget(StrictSection):
    """A cap on everything this run folder's teacher calls cost (generation and evaluation, every run of it): the run
    stops cleanly before a call could pass it; raising it and re-running goes on, paying nothing twice."""

    max_tokens: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _a_cap(self) -> Budget:
        if self.max_tokens is None and self.max_cost is None:
            raise ValueError("give max_tokens, max_cost or both")
        return self
