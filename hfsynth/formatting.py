"""Numbers as the report, the cards, the Space and the command line print them: one format per kind of value."""

from __future__ import annotations


def format_number(value: float | None, digits: int = 3) -> str:
    """A number for a table cell ("n/a" when missing): the cards', the report's and the Space's one format."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_percent(value: float | None, digits: int = 0, spaced: bool = False) -> str:
    """A share as a percentage ("n/a" when missing); ``spaced``: "12.5 %", as the report writes it."""
    text = "n/a" if value is None else f"{value:.{digits}%}"
    return text.replace("%", " %") if spaced and value is not None else text


def pair_text(synthetic: float | None, real: float | None, digits: int = 3) -> str:
    return f"{format_number(synthetic, digits)} / {format_number(real, digits)}"


def interval_text(interval: list[float] | None, signed: bool = False, percent: bool = False) -> str:
    """``[0.640, 0.780]`` (``[+0.010, +0.090]`` signed, ``[80%, 110%]`` as percentages); empty without one."""
    if not interval:
        return ""
    low, high = interval
    if percent:
        return f"[{low:.0%}, {high:.0%}]"
    return f"[{low:+.3f}, {high:+.3f}]" if signed else f"[{low:.3f}, {high:.3f}]"
