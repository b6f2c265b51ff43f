"""Reproducible training: the same recipe, data and seed give the same student, whatever machine trains it on CPU.

:func:`training_context` wraps one training. Inside it:

- ``random``, NumPy and torch are seeded (``transformers.set_seed``); the trainers seed again from their own
  arguments, with the same seed;
- torch uses deterministic algorithms where it has them (``torch.use_deterministic_algorithms(True,
  warn_only=True)``: an operation without one warns instead of failing), cuDNN's too, and cuBLAS gets the workspace
  setting its deterministic mode needs;
- torch's intra-op thread count is fixed (default 1, ``HFSYNTH_TRAINING_THREADS`` to change it). Floating-point
  sums split over a different number of threads round differently: measured on the embedded all-MiniLM-L6-v2 SetFit
  student (48 SIB-200 sentences, 5 iterations), 1 and 2 threads gave body weights 7e-9 and probabilities 1.8e-7 apart,
  where two runs with the same count were bit-identical. Small, but it grows with longer trainings and can flip
  a prediction near a tie; a fixed count removes it.

Everything it changes is put back on exit. Across CPU models (other vector instructions) and library versions
results can still differ in the last bits; the recipe, seed and versions are recorded beside each student.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from hfsynth.errors import HfsynthError
from hfsynth.logs import apply_to_loaded_libraries

THREADS_VARIABLE = "HFSYNTH_TRAINING_THREADS"
DEFAULT_TRAINING_THREADS = 1


def training_threads() -> int:
    """The intra-op thread count trainings use: ``HFSYNTH_TRAINING_THREADS`` or 1."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_TRAINING_THREADS
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:

        raise HfsynthError(f"{THREADS_VARIABLE}={value!r}: give a whole number of threads, 1 or more")
    return threads


@contextmanager
def training_context(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seeded, deterministic, fixed-thread-count training (see the module's docstring); restores torch on exit."""
    import torch
    from transformers import set_seed


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
