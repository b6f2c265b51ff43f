"""The trainer arguments every student kind shares (as trl keeps ``sft_config.py`` beside ``sft_trainer.py``).

Every kind trains through a ``transformers``-style trainer that writes checkpoints into the run's checkpoint folder,
keeps only the last one (a killed run resumes from it), saves every ``save_steps`` steps, seeds with the run's seed
and reports nowhere. The kinds that run a ``transformers.Trainer`` (encoder, SFT) also share logging, the device and
mixed precision.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: The folders a transformers Trainer saves into (``transformers.trainer_utils.PREFIX_CHECKPOINT_DIR``-STEP).
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
#: The file the Trainer writes last into a checkpoint: without it, the checkpoint was cut short (a kill mid-save).
CHECKPOINT_COMPLETE_MARKER = "trainer_state.json"


class CheckpointedParams(Protocol):
    """What the shared arguments read from a kind's params."""

    @property
    def seed(self) -> int: ...

    @property
    def save_steps(self) -> int: ...


def checkpoint_arguments(params: CheckpointedParams, checkpoint_dir: Path) -> dict[str, Any]:
    """For any trainer (setfit's ``TrainingArguments`` too): checkpoints, seed, no reporting."""
    return {
        "output_dir": str(checkpoint_dir),
        "save_strategy": "steps",
        "save_steps": params.save_steps,
        "save_total_limit": 1,  # only the last checkpoint is needed to resume
        "seed": params.seed,
        "report_to": "none",
    }


def trainer_arguments(
    params: CheckpointedParams, checkpoint_dir: Path, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    """For ``transformers.TrainingArguments`` and its subclasses (trl's ``SFTConfig``): the checkpoint arguments,
    logging twice per checkpoint, the CPU when no accelerator was chosen, and mixed precision for a half dtype
    (the weights stay as they were loaded)."""
    import torch

    return {
        **checkpoint_arguments(params, checkpoint_dir),
        "logging_steps": max(1, params.save_steps // 2),
        "use_cpu": device.type == "cpu",
        "bf16": dtype == torch.bfloat16,
        "fp16": dtype == torch.float16,
    }


def last_complete_checkpoint(checkpoint_dir: Path) -> str | None:
    """The checkpoint every student kind resumes from: the newest one the Trainer finished writing, or None.

    A checkpoint without :data:`CHECKPOINT_COMPLETE_MARKER` was being written when the process was killed; resuming
    from it would fail (its state file is missing) on every re-run, so it is deleted, and the one before it (kept by
    ``save_total_limit`` until the new one was complete) is used instead.
    """
    if not checkpoint_dir.is_dir():
        return None
    found = [(int(match.group(1)), path) for path in checkpoint_dir.iterdir()
             if path.is_dir() and (match := _CHECKPOINT.match(path.name))]
    for _, path in sorted(found, reverse=True):
        if (path / CHECKPOINT_COMPLETE_MARKER).is_file():
            return str(path)
        logger.warning("checkpoint %s was cut short (no %s): deleted, resuming from an earlier one", path,
                       CHECKPOINT_COMPLETE_MARKER)
        shutil.rmtree(path)
    return None
