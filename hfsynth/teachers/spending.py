"""What a teacher's calls cost, and the cap on it: tokens counted as answers arrive (paid now, or found in the call
cache and not paid again), their price at the recipe's ``teacher.pricing``, and ``teacher.budget``.

The budget covers everything the run folder's call cache holds, every stage and every run: before a batch of calls
is sent, its worst case (each prompt's tokens and the most tokens an answer may take) must fit beside what was
already spent. Otherwise the stage stops with :class:`BudgetReached`, its answers so far stored; raising the cap and
running the same command goes on from there. A prompt's tokens come from the teacher's tokenizer where it has one
here (the local teacher), otherwise from an estimate that errs high (:func:`estimate_tokens`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from hfsynth.cache import Tokens
from hfsynth.errors import HfsynthError
from hfsynth.recipe.schema import TeacherConfig
from hfsynth.recipe.teacher_costs import Pricing
from hfsynth.runs.records import TeacherTokens, format_cost

#: UTF-8 bytes per token in :func:`estimate_tokens`: below what tokenizers average on Latin scripts (about 4), close
#: to one token per character on scripts of 3-byte characters.
BYTES_PER_TOKEN = 3


def estimate_tokens(text: str) -> int:
    """A token count for ``text`` without its tokenizer, on the high side."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def cost(pricing: Pricing, prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * pricing.input_per_million + completion_tokens * pricing.output_per_million) / 1e6


class BudgetReached(HfsynthError):
    """The next batch of teacher calls could pass ``teacher.budget``: the stage stopped before it."""


@dataclass
class Spending:
    """One stage's teacher tokens (``stage`` names it in messages), and the budget check before each batch."""

    config: TeacherConfig
    stage: str
    #: The integer fields of :class:`TeacherTokens`, counted so far.
    counts: Counter[str] = field(default_factory=Counter)

    def count(self, tokens: Tokens | None, cached: bool) -> None:
        kind = "cached_" if cached else ""
        self.counts[f"{kind}calls"] += 1
        if tokens is None:
            self.counts["uncounted_calls"] += 1
        else:
            self.counts[f"{kind}prompt_tokens"] += tokens[0]
            self.counts[f"{kind}completion_tokens"] += tokens[1]

    def record(self) -> TeacherTokens:
        counts, pricing = self.counts, self.config.pricing
        priced = {} if pricing is None else {
            "currency": pricing.currency,
            "cost": round(cost(pricing, counts["prompt_tokens"], counts["completion_tokens"]), 6),
            "cached_cost": round(cost(pricing, counts["cached_prompt_tokens"], counts["cached_completion_tokens"]), 6)}
        integers = [name for name, info in TeacherTokens.model_fields.items() if info.annotation in (int, "int")]
        return TeacherTokens(**{name: counts[name] for name in integers}, **priced)

    @property
    def capped(self) -> bool:
        return self.config.budget is not None

    def affordable(self, spent: Tokens, worst: Sequence[Tokens]) -> int:
        """How many of the next batches fit within the budget, in order, each at its worst case ``worst[i]``."""
        budget, pricing = self.config.budget, self.config.pricing
        if budget is None:
            return len(worst)
        prompt, completion = spent
        for index, (more_prompt, more_completion) in enumerate(worst):
            prompt, completion = prompt + more_prompt, completion + more_completion
            if budget.max_tokens is not None and prompt + completion > budget.max_tokens:
                return index
            if budget.max_cost is not None and pricing and cost(pricing, prompt, completion) > budget.max_cost:
                return index
        return len(worst)

    def reached(self, spent: Tokens, answered: int, total: int, next_worst: Tokens) -> BudgetReached:
        budget, pricing = self.config.budget, self.config.pricing
        assert budget is not None
        caps = []
        if budget.max_tokens is not None:
            caps.append(f"max_tokens {budget.max_tokens:,}")
        if budget.max_cost is not None and pricing:
            caps.append(f"max_cost {format_cost(budget.max_cost, pricing.currency)}")
        used = f"{sum(spent):,} tokens" + (f", {format_cost(cost(pricing, *spent), pricing.currency)}"
                                          if pricing else "")
        return BudgetReached(
            f"teacher.budget ({', '.join(caps)}) reached: {self.stage} stopped after {answered} of {total} calls "
            f"({used} spent in this run folder; the next batch may take up to {sum(next_worst):,} tokens); every "
            "answer is kept: raise teacher.budget and run the same command to go on, nothing is paid twice")
