"""What each stage of a run costs: its wall time and its peak memory, kept in the run folder's ``run_stats.json``
(:class:`hfsynth.run_records.RunStats`) and printed by ``hfsynth run``.

Peak memory is the process's high-water mark of resident memory (``VmHWM``). Linux lets a process reset it (writing
``5`` to ``/proc/self/clear_refs``), so each stage reports its own peak; where that is not possible the record says
the peak is the whole process's (``resource.getrusage``), an upper bound.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hfsynth.run_folder import RunFolder
from hfsynth.run_records import RunStats, StageStats

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _reset_peak() -> bool:
    """Reset this process's peak resident memory to its current size; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _peak_mib(reset_worked: bool) -> float:
    if reset_worked:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB elsewhere


@contextmanager
def measured_stage(out_dir: Path, stage: str, engine: str = "local") -> Iterator[None]:
    """Time the block and record its peak memory as ``stage`` in ``out_dir``'s run stats (when it succeeds)."""
    reset_worked = _reset_peak()
    started = time.perf_counter()
    yield
    record = StageStats(seconds=time.perf_counter() - started, peak_rss_mib=_peak_mib(reset_worked),
                        peak_scope="stage" if reset_worked else "process", engine=engine)
    path = RunFolder(out_dir).stats
    earlier = RunStats.load_if_present(path)
    RunStats(stages={**(earlier.stages if earlier else {}), stage: record}).save(path)


def summary(out_dir: Path) -> str | None:
    """One line: each recorded stage's minutes and peak memory."""
    stats = RunStats.load_if_present(RunFolder(out_dir).stats)
    if stats is None or not stats.stages:
        return None
    parts = [f"{name} {entry.seconds / 60:.1f} min, peak {entry.peak_rss_mib / 1024:.2f} GiB"
             for name, entry in stats.stages.items()]
    return "stages: " + "; ".join(parts)
