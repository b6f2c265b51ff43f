"""Reproducible numbers: the same recipe, data and seed give the same dataset, students and scores on CPU, whatever
the machine's core count, the launcher (``ray job submit`` runs a job with ``OMP_NUM_THREADS=1``) or its thread
variables.

**Thread count.** Floating-point sums split over a different number of threads round differently, so torch's
intra-op thread count is part of a result. Measured: the embedded SmolLM2 teacher in bfloat16 sampled 1 of 8 texts
differently with 1 and 2 threads in a probe (40 new tokens each; identical in float32; a shorter run, 4 prompts of
24 tokens in ``benchmarks/teacher_under_load.py``, happened to match: ``same_texts_across_thread_counts``); the
all-MiniLM-L6-v2 SetFit student (48 SIB-200 sentences, 5 iterations) trained body weights 7e-9 and probabilities
1.8e-7 apart, where two runs with the same count were bit-identical. Small, but enough to change a sampled token or
flip a prediction near a tie. So every stage that produces numbers takes its count from here, never from torch's
default (the cores) nor from ``OMP_NUM_THREADS``:

- teacher generation and classification, student evaluation and the quality report: :func:`pin_threads`, called
  when a stage starts (:func:`hfsynth.pipeline.holds_run_folder`), by the local teacher, and in every Ray unit and
  teacher actor (:mod:`hfsynth.engines.ray_engine`); ``HFSYNTH_THREADS``, default :data:`DEFAULT_THREADS`;
- trainings: :func:`training_context`, ``HFSYNTH_TRAINING_THREADS``, default :data:`DEFAULT_TRAINING_THREADS`.

The same count on a 1-core and a 64-core machine gives the same bits (up to the CPU's vector instructions and the
library versions, which are recorded beside each student).

**Under load.** A fixed count does not shrink when other processes take the cores, and libgomp's default wait policy
(spin at every barrier before sleeping) then burns the CPU the late thread needs. :func:`passive_openmp` sets
``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once) when hfsynth is imported, which must happen before torch
loads its OpenMP runtime (torch's CPU wheel links libgomp): the CLI and Ray workers import hfsynth first; a script that
imports torch first keeps libgomp's default. The policy changes how a wait is spent, never a result; an
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` already set is kept. Measured in ``benchmarks/teacher_under_load.py``.

:func:`training_context` wraps one training. Inside it:

- ``random``, NumPy and torch are seeded (``transformers.set_seed``); the trainers seed again from their own
  arguments, with the same seed;
- torch uses deterministic algorithms where it has them (``torch.use_deterministic_algorithms(True,
  warn_only=True)``: an operation without one warns instead of failing), cuDNN's too, and cuBLAS gets the workspace
  setting its deterministic mode needs;
- torch's intra-op thread count is the training count.

Everything it changes is put back on exit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hfsynth.errors import HfsynthError

THREADS_VARIABLE = "HFSYNTH_THREADS"
TRAINING_THREADS_VARIABLE = "HFSYNTH_TRAINING_THREADS"
#: Teacher, evaluation and quality threads. Chosen by ``benchmarks/teacher_under_load.py`` (see the README).
DEFAULT_THREADS = 2
DEFAULT_TRAINING_THREADS = 1
WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"


def _threads_setting(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise HfsynthError(f"{variable}={value!r}: give a whole number of threads, 1 or more")
    return threads


def compute_threads() -> int:
    """Torch's intra-op thread count for everything but training: ``HFSYNTH_THREADS`` or :data:`DEFAULT_THREADS`."""
    return _threads_setting(THREADS_VARIABLE, DEFAULT_THREADS)


def training_threads() -> int:
    """The intra-op thread count trainings use: ``HFSYNTH_TRAINING_THREADS`` or :data:`DEFAULT_TRAINING_THREADS`."""
    return _threads_setting(TRAINING_THREADS_VARIABLE, DEFAULT_TRAINING_THREADS)


def pin_threads(threads: int | None = None) -> int:
    """Give torch, for this whole process, the fixed thread count (``threads``, else :func:`compute_threads`).

    Process-wide and never put back: stages of several recipes may run at once in one driver (Ray engine), and they
    all want the same count. Returns the count."""
    import torch

    threads = threads or compute_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def passive_openmp() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set, for an OpenMP runtime not loaded yet (see the module's docstring)."""
    # GOMP_SPINCOUNT set: the user tunes the spinning themselves (e.g. 300000, libgomp's default, on an idle box).
    if "torch" not in sys.modules and "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault(WAIT_POLICY_VARIABLE, "PASSIVE")


@contextmanager
def training_context(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seeded, deterministic, fixed-thread-count training (see the module's docstring); restores torch on exit."""
    import torch
    from transformers import set_seed

    from hfsynth.logs import apply_to_loaded_libraries

    # The student's libraries are imported by now: setfit resets its logging on import.
    apply_to_loaded_libraries()
    threads = threads or training_threads()
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    # Read by cuBLAS when a CUDA context is created; without it deterministic mode raises on some matmuls.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    set_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous_cudnn
