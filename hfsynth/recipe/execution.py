"""A recipe's ``execution`` section: where the work runs and what each unit asks a Ray cluster for. Kept beside
:mod:`hfsynth.engines.base` (the engines), as trl keeps ``sft_config.py`` beside ``sft_trainer.py``; the recipe
(:mod:`hfsynth.recipe.schema`) holds it as one of its sections."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictSection(BaseModel):
    """A recipe section: unknown keys, loose types and non-finite numbers are refused."""

    # Strict: `samples_per_label: true` is not 1, nor "5" five. No infinities or NaN: `timeout: .inf` would pass
    # every bound and overflow where it is used.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class WorkResources(StrictSection):
    """What one unit of work asks the Ray cluster for (``ray.remote`` options); ignored by the local engine."""

    num_cpus: float = Field(1, ge=0)
    num_gpus: float = Field(0, ge=0)
    # Custom resources declared by the cluster's nodes, e.g. {"teacher_node": 1}.
    resources: dict[str, float] = {}
    # Torch threads in each unit. Unset: the fixed count every engine uses (HFSYNTH_THREADS, read on the driver),
    # so that results match the local engine's byte for byte (on CPU, results depend on the thread count).
    threads: int | None = Field(None, ge=1)


class TeacherReplicas(WorkResources):
    # Ray actors, each holding one teacher (a local model on its own GPU/CPU share, or a remote client).
    replicas: int = Field(1, ge=1)


class ExecutionConfig(StrictSection):
    """Where the work runs: this process (``local``) or a Ray cluster (``ray``, the ``hfsynth[ray]`` extra)."""

    engine: Literal["local", "ray"] = "local"
    # "auto" (the cluster `ray start` started on this machine), "host:6379", "ray://host:10001" (Ray Client); unset:
    # RAY_ADDRESS when set (as under `ray job submit`), else a new local Ray instance.
    address: str | None = None
    teacher: TeacherReplicas = TeacherReplicas()
    students: WorkResources = WorkResources()  # per student run (student x train size x repeat)
    evaluation: WorkResources = WorkResources()  # per (student run, test set) evaluation
    # A worker or actor that dies mid-unit: the unit runs again this many times (Ray task retries, actor restarts).
    max_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _address_is_for_ray(self) -> ExecutionConfig:
        if self.address is not None and self.engine != "ray":
            raise ValueError("address is only for engine: ray")
        return self
