"""What a model is made of, from its config alone: built on torch's meta device (no memory, no weights), for the
plan's storage estimate (:mod:`hfsynth.grid_plan`) and the recipe check of a LoRA student's target modules
(:mod:`hfsynth.recipes.checks`)."""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def meta_model(name: str) -> torch.nn.Module | None:
    """The model ``name`` built from its config alone on torch's meta device (no memory, no weights), or None when
    its config cannot be reached (a Hub id offline, a gated model without a token)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from hfsynth.embedded import resolve_model

    try:
        config = AutoConfig.from_pretrained(resolve_model(name))
    except (OSError, ValueError):
        return None
    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError:  # an encoder
            return AutoModel.from_config(config)


def lora_parameters(model: torch.nn.Module, rank: int, target_modules: list[str] | str) -> int:
    """Parameters of a LoRA adapter on ``model``: r x (in + out) per adapted linear layer; "all-linear" adapts every
    linear layer but the output head, as peft does."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    total = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        if target_modules == "all-linear" or name.rsplit(".", 1)[-1] in target_modules:
            total += rank * (module.in_features + module.out_features)
    return total


def missing_target_modules(model: torch.nn.Module, target_modules: list[str] | str) -> list[str]:
    """The names of ``target_modules`` that match no module of ``model`` (peft matches a name or its last parts)."""
    if isinstance(target_modules, str):
        return []  # "all-linear", or a regular expression peft matches itself
    names = [name for name, _ in model.named_modules()]
    return [target for target in target_modules
            if not any(name == target or name.endswith(f".{target}") for name in names)]


#: Seconds the base models' configs may take to arrive, all fetched at once: without a network the Hub client would
#: wait minutes per model before giving up (485 s for the paper's recipes).
CONFIG_TIMEOUT = 8.0


@cache
def _fetch(name: str) -> list[Any]:
    """A daemon thread building ``name`` on the meta device; its result lands in the returned list. Cached: a model
    of several students or recipes is fetched once, and one that did not arrive is not waited for again."""
    box: list[Any] = []

    def build() -> None:
        try:
            box.append(meta_model(name))
        except Exception:  # noqa: BLE001 - whatever stops it, the plan says "?" for its size
            box.append(None)

    threading.Thread(target=build, daemon=True, name=f"config {name}").start()
    return box


def meta_models(names: list[str], timeout: float = CONFIG_TIMEOUT) -> dict[str, torch.nn.Module | None]:
    """Each model on the meta device, fetched all at once; None for one that cannot be reached or did not arrive
    within ``timeout`` seconds (its thread is a daemon: it does not hold the command's exit)."""
    boxes = {name: _fetch(name) for name in dict.fromkeys(names)}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(boxes.values()):
        time.sleep(0.05)
    return {name: box[0] if box else None for name, box in boxes.items()}
