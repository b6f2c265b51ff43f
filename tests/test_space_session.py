"""`hfsynth space serve` keeps the users' texts (batch downloads, Gradio's copies of them) in a folder of its own and
deletes it however it stops: a real server process, stopped by Ctrl-C and by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hfsynth.space.session import GRADIO_CACHE_VARIABLE, SESSION_PREFIX, served_session
from tests.cli_helpers import cli_environment, free_port
from tests.student_helpers import LABELS, write_test_set

RECIPE = """\
name: session-test
task: {{name: topic, description: Classify the topic of a sentence.}}
labels: [{labels}]
languages: [en]
teacher: {{model: smollm2-135m-instruct}}
dataset: {{repo_id: me/session-test}}
students: [{{name: never-trained, kind: setfit, model: all-minilm-l6-v2}}]
evaluation: {{sets: [{{language: en, path: {test_set}}}]}}
"""


def test_the_session_folder_holds_gradios_cache_and_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio.utils import get_upload_folder

    monkeypatch.delenv(GRADIO_CACHE_VARIABLE, raising=False)
    with served_session() as root:
        assert root.name.startswith(SESSION_PREFIX) and root.is_dir()
        assert Path(get_upload_folder()) == root / "gradio"  # where Gradio copies what it returns
        (root / "gradio").mkdir()
        (root / "gradio" / "predictions.csv").write_text("a user's text")
    assert not root.exists() and GRADIO_CACHE_VARIABLE not in os.environ


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_space_serve_removes_its_temporary_files_when_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    run = tmp_path / "run"
    (run / "dataset").mkdir(parents=True)
    (run / "dataset" / "recipe.yaml").write_text(RECIPE.format(
        labels=", ".join(f"{{name: {label}}}" for label in LABELS), test_set=write_test_set(tmp_path, "en")))
    temporary = tmp_path / "tmp"  # the process's temporary folder: whatever it leaves behind is seen here
    temporary.mkdir()
    port = free_port()
    environment = cli_environment(TMPDIR=str(temporary), GRADIO_ANALYTICS_ENABLED="False")
    environment.pop(GRADIO_CACHE_VARIABLE, None)
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "hfsynth.cli", "space", "serve", "--out", str(run),
                                    "--port", str(port)], env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the Space did not come up"
            time.sleep(0.5)
        [session] = temporary.glob(f"{SESSION_PREFIX}*")
        # Stand-ins for Gradio's copies of batch predictions (its cache is inside the session folder).
        (session / "gradio" / "copy").mkdir(parents=True, exist_ok=True)
        (session / "gradio" / "copy" / "predictions.csv").write_text("text,label\na user's text,travel\n")
        process.send_signal(stop)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = (tmp_path / "serve.log").read_text()
    # Ctrl-C: 0 when Gradio's wait loop caught it, 130 when it came a moment earlier (hfsynth's own handler).
    assert code in ((143,) if stop == signal.SIGTERM else (0, 130)), output
    assert "Traceback" not in output, output
    assert not list(temporary.iterdir()), list(temporary.rglob("*"))  # no session folder, no shared gradio folder


def test_space_serve_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    from tests.cli_helpers import one_error_line, run_cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(run_cli("space", "serve", "--out", str(tmp_path), "--port", str(port)))
    assert line == f"error: cannot listen on 127.0.0.1:{port}: already in use"
