"""A training's progress as events: a transformers ``TrainerCallback`` that sends each run's steps to a callable.

Picklable whenever that callable is, so a run on a cluster's worker reports to the driver through the engine's event
sink (:meth:`hfsynth.engines.base.Engine.event_sink`); the CLI draws the bars (:mod:`hfsynth.cli.display`). Imports
transformers: load it only when training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from hfsynth.runs.folder import STUDENTS_DIR


@dataclass(frozen=True)
class TrainingStep:
    """The run (the student's name for its main run, ``NAME/SIZE-per-label-seedK`` for the others), the steps done,
    the steps planned (None when unknown), and whether it ended."""

    run: str
    step: int
    total: int | None
    ended: bool = False


class StepReporter(TrainerCallback):
    def __init__(self, send: Callable[[TrainingStep], None]) -> None:
        self.send = send

    @staticmethod
    def _run(args: Any) -> str:
        # Trainer checkpoints go to RUN/checkpoints: the run is the folder above; a sweep run is named with its
        # student's folder too (the sweep runs of two students have the same folder names).
        if not args.output_dir:
            return ""
        run = Path(args.output_dir).parent
        return run.name if run.parent.name == STUDENTS_DIR else f"{run.parent.name}/{run.name}"

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.send(TrainingStep(self._run(args), state.global_step, state.max_steps or None))

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.send(TrainingStep(self._run(args), state.global_step, state.max_steps or None))

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.send(TrainingStep(self._run(args), state.global_step, state.global_step or 1, ended=True))
