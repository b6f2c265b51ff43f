"""One command at a time in a run folder: a second one is refused with one line naming the holder, and a killed
holder leaves no stale lock behind (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from hfsynth.runs.folder import RUN_FOLDER_LOCK
from hfsynth.storage.folder_lock import locked_folder
from tests.test_recipe import minimal

ROOT = Path(__file__).resolve().parents[1]


def hold(folder: Path) -> subprocess.Popen:
    """Another process holding the run folder as a command does, until it is killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from hfsynth.storage.folder_lock import locked_folder
        with locked_folder(Path({str(folder)!r}), {RUN_FOLDER_LOCK!r}, "run folder"):
            print("held", flush=True)
            time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_command_on_a_held_run_folder_is_one_line(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(minimal()))
    out = tmp_path / "run"
    holder = hold(out)
    try:
        result = subprocess.run([sys.executable, "-m", "hfsynth.cli", "generate", str(recipe), "--out", str(out)],
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        holder.kill()
        holder.wait()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1, result.stderr
    assert len(errors) == 1 and f"in use by pid {holder.pid}" in errors[0] and "run folder" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (out / "cache").exists() and not (out / "dataset").exists()  # nothing paid, nothing written
    # The holder was killed: the kernel dropped its lock, and the folder is free again.
    with locked_folder(out, RUN_FOLDER_LOCK, "run folder"):
        pass


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path: Path) -> None:
    with locked_folder(tmp_path, RUN_FOLDER_LOCK, "run folder"), locked_folder(tmp_path, RUN_FOLDER_LOCK, "run folder"):
        holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            from pathlib import Path
            from hfsynth.storage.folder_lock import locked_folder
            with locked_folder(Path({str(tmp_path)!r}), {RUN_FOLDER_LOCK!r}, "run folder"):
                pass
        """)], stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, stderr = holder.communicate(timeout=120)
        assert holder.returncode != 0 and "FolderLockedError" in stderr and f"pid {os.getpid()}" in stderr
    holder = hold(tmp_path)  # released when the outer block ended
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with locked_folder(tmp_path, RUN_FOLDER_LOCK, "run folder"):
        pass
