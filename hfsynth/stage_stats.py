"""What each stage of a run costs: its wall time and its peak memory, kept in the run folder's ``run_stats.json``
(:class:`hfsynth.runs.records.RunStats`) and printed by ``hfsynth run``.

Peak memory is the process's high-water mark of resident memory (``VmHWM``). Linux lets a process reset it (writing
``5`` to ``/proc/self/clear_refs``), so each stage reports its own peak; where that is not possible the record says
the peak is the whole process's (``resource.getrusage``), an upper bound. Texts embedded by the stage's driver are
counted too (:mod:`hfsynth.embeddings`; a cluster's units look theirs up in tables the driver computed).
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hfsynth import embeddings
from hfsynth.runs.folder import RunFolder
from hfsynth.runs.records import EmbeddedTexts, RunStats, StageStats, TeacherTokens

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


#: Stages being measured right now, in any thread (``hfsynth run`` with several recipes on Ray runs them at once),
#: and how many have started so far.
_active = 0
_started = 0
_lock = threading.Lock()


def _reset_peak() -> bool:
    """Reset this process's peak resident memory to its current size; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _stage_peak_mib() -> float | None:
    """The peak since the last reset (``VmHWM``), where the kernel reports it."""
    for line in _STATUS.read_text().splitlines() if _STATUS.is_file() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def _process_peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB elsewhere


@dataclass
class StageCosts:
    """What a measured block reports beside its time and memory."""

    teacher_tokens: TeacherTokens | None = None


@contextmanager
def measured_stage(out_dir: Path, stage: str, engine: str = "local") -> Iterator[StageCosts]:
    """Time the block and record its peak memory as ``stage`` in ``out_dir``'s run stats (when it succeeds), with
    the teacher tokens the block sets on the :class:`StageCosts` it is given.

    The peak is the stage's own when it ran alone in the process; with other stages running alongside (another
    recipe's, in another thread) it is the process's peak, and the record says so."""
    global _active, _started
    with _lock:
        own_peak = _active == 0 and _reset_peak()  # no other stage running: its peak is this stage's own
        _active += 1
        _started += 1
        started_before = _started
    started = time.perf_counter()
    embedded_before = embeddings.snapshot()
    costs = StageCosts()
    try:
        yield costs
    finally:
        with _lock:
            _active -= 1
            own_peak = own_peak and _started == started_before  # and none started while it ran
    seconds = time.perf_counter() - started
    stage_peak = _stage_peak_mib() if own_peak else None
    embedded = embeddings.counts_since(embedded_before)
    record = StageStats(seconds=seconds, peak_rss_mib=stage_peak if stage_peak is not None else _process_peak_mib(),
                        peak_scope="stage" if stage_peak is not None else "process", engine=engine,
                        teacher_tokens=costs.teacher_tokens,
                        embedded_texts=EmbeddedTexts(**embedded) if any(embedded.values()) else None)
    path = RunFolder(out_dir).stats
    earlier = RunStats.load_if_present(path)
    RunStats(stages={**(earlier.stages if earlier else {}), stage: record}).save(path)


def summary(out_dir: Path) -> str | None:
    """One line: each recorded stage's minutes, peak memory, teacher tokens and texts embedded."""
    stats = RunStats.load_if_present(RunFolder(out_dir).stats)
    if stats is None or not stats.stages:
        return None
    parts = [f"{name} {entry.seconds / 60:.1f} min, peak {entry.peak_rss_mib / 1024:.2f} GiB"
             + (f", {entry.teacher_tokens.describe()}" if entry.teacher_tokens else "")
             + (f", {entry.embedded_texts.computed:,} texts embedded" if entry.embedded_texts else "")
             for name, entry in stats.stages.items()]
    return "stages: " + "; ".join(parts)
