"""A real ``transformers serve`` on loopback, serving the embedded SmolLM2-135M-Instruct offline.

The server is pinned to the model's Hub id (``transformers serve HuggingFaceTB/SmolLM2-135M-Instruct``: the positional
``force_model`` argument) and gets a private HF_HOME whose hub cache holds the embedded model's folder as that id's
snapshot. So requests name a real Hub id, as a remote teacher's ``model`` (provenance, never a local path) does,
``/v1/models`` lists it as a real deployment would, and with HF_HUB_OFFLINE=1 transformers loads it from that cache
without a single network request.

One test module uses it with ``from tests.serve_fixtures import transformers_server``; for several modules to share
one server, register it in tests/conftest.py instead (``pytest_plugins = ["tests.serve_fixtures"]``) and drop the
imports.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hfsynth.embedded import base_model_id, resolve_model
from hfsynth.errors import HfsynthError

SERVED_MODEL = "smollm2-135m-instruct"
# Loading transformers and the model takes ~15 s on an idle machine, much longer on 2 busy shared cores.
_STARTUP_TIMEOUT_SECONDS = 300
# Any 40-hex name will do: the snapshot is found through refs/main.
_FAKE_COMMIT = "0" * 40


@dataclass(frozen=True)
class ServedModel:
    base_url: str
    #: The Hub id to put in requests (the server is pinned to it and refuses any other name).
    model: str
    log_path: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _add_to_hub_cache(model_dir: Path, hub_id: str, hub_cache: Path) -> None:
    """Make ``model_dir`` the cached snapshot of ``hub_id`` on branch main (symlinks, as the real cache uses).

    One change: ``do_sample: true`` in the generation config. `transformers serve` (5.23) never turns sampling on
    from a request; it only turns it off at temperature 0. With SmolLM2's config (no do_sample) every request would
    be greedy whatever its temperature and seed, unlike an OpenAI-compatible server.
    """
    repo = hub_cache / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / _FAKE_COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(_FAKE_COMMIT)
    for file in model_dir.iterdir():
        if file.name != "generation_config.json":
            (snapshot / file.name).symlink_to(file.resolve())
    generation_config = json.loads((model_dir / "generation_config.json").read_text())
    (snapshot / "generation_config.json").write_text(json.dumps(generation_config | {"do_sample": True}, indent=2))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def transformers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    try:
        model_dir = Path(resolve_model(SERVED_MODEL))
    except HfsynthError as error:
        pytest.fail(f"the served model is not available: {error}")
    hub_id = base_model_id(SERVED_MODEL)
    home = tmp_path_factory.mktemp("transformers-serve")
    _add_to_hub_cache(model_dir, hub_id, home / "hub")

    environment = {
        key: value
        for key, value in os.environ.items()
        # The server needs no token, and a cache location from the caller's environment would win over HF_HOME.
        if key not in {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}
    }
    environment |= {
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        # One thread: on 2 shared cores, torch's default thread pool made generation ~5x slower under load.
        "OMP_NUM_THREADS": "1",
    }
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = home / "server.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", hub_id,
               "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        # The forced model loads before the HTTP server starts: once /v1/models answers, requests are served.
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not _answers(f"{base_url}/v1/models"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"transformers serve did not come up (exit code {process.poll()}):\n{tail}")
            time.sleep(0.5)
        yield ServedModel(base_url=base_url, model=hub_id, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
