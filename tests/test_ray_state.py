"""The test suite whatever Ray state the machine is in: a developer who ran ``hfsynth ... --ray`` or ``ray start``
has a ~/.ray/auth_token, and a suite started in the background of a non-interactive shell has SIGINT ignored. Both
once failed tests that have nothing to do with either (the clusters' later nodes refused; ``space serve`` deaf to
Ctrl-C). Here they run in a pytest of their own, in exactly that state."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_suite_passes_with_a_ray_token_at_home_and_sigint_ignored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    environment = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
    environment |= {"HOME": str(home), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ray_hermetic_check.py",
         "tests/test_space_session.py::test_space_serve_removes_its_temporary_files_when_stopped[ctrl-c]"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900, check=False,
        # As a shell's background job: SIGINT ignored, which every process it starts inherits.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr


def test_a_local_instance_leaves_no_token_behind(tmp_path: Path) -> None:
    """Ray writes a token to ~/.ray/auth_token for a new local instance; hfsynth's gets one of its own instead, so
    later clusters on the machine behave as before."""
    script = ("from hfsynth.engines.ray_cluster import connect; import ray; connect('local', {}); "
              "print(ray.get(ray.remote(lambda: 'ran').remote())); ray.shutdown()")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
    environment |= {"HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ran", result.stdout + result.stderr
    assert not (tmp_path / ".ray").exists()
