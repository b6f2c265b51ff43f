"""The real `hfsynth` command in a subprocess, with this checkout's hfsynth first on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def cli_environment(**extra: str) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return environment | extra


def run_cli(*arguments: str, timeout: float = 120, cwd: Path | None = None,
            **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hfsynth.cli", *arguments], env=cli_environment(**environment),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line a failed command printed (checked: non-zero exit, no traceback)."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def free_port() -> int:
    """A loopback port nothing listens on (free a moment ago)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
