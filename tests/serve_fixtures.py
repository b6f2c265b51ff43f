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
from collections.abc import Iterator, Sequence
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


@dataclass
class ServerProcess:
    """One ``transformers serve`` process on loopback (:func:`start_transformers_serve`)."""

    base_url: str
    model: str
    process: subprocess.Popen
    log_path: Path

    def wait_ready(self, timeout: float = _STARTUP_TIMEOUT_SECONDS) -> None:
        """Until ``/v1/models`` answers (the forced model loads before the HTTP server starts); RuntimeError with
        the log's tail when the process exits or the time is up."""
        deadline = time.monotonic() + timeout
        while not _answers(f"{self.base_url}/v1/models"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"transformers serve did not come up (exit code {self.process.poll()}):\n{tail}")
            time.sleep(0.5)

    def requests_served(self) -> int:
        return self.log_path.read_text(errors="replace").count("POST /v1/chat/completions")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_transformers_serve(home: Path, extra_args: Sequence[str] = ()) -> ServerProcess:
    """``transformers serve`` of the embedded SmolLM2, pinned to its Hub id, offline, with a private HF_HOME in
    ``home`` whose hub cache holds the embedded model as that id's snapshot; one torch thread (on 2 shared cores,
    torch's default thread pool made generation ~5x slower under load). Call ``wait_ready`` before requests."""
    try:
        model_dir = Path(resolve_model(SERVED_MODEL))
    except HfsynthError as error:
        raise RuntimeError(f"the served model is not available: {error}") from None
    hub_id = base_model_id(SERVED_MODEL)
    _add_to_hub_cache(model_dir, hub_id, home / "hub")
    # The server needs no token, and a cache location from the caller's environment would win over HF_HOME.
    private = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}
    environment = {key: value for key, value in os.environ.items() if key not in private}
    environment |= {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                    "OMP_NUM_THREADS": "1"}
    port = _free_port()
    log_path = home / "server.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", hub_id,
               "--host", "127.0.0.1", "--port", str(port), *extra_args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    return ServerProcess(f"http://127.0.0.1:{port}", hub_id, process, log_path)


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
    server = start_transformers_serve(tmp_path_factory.mktemp("transformers-serve"))
    try:
        try:
            server.wait_ready()
        except RuntimeError as error:
            pytest.fail(str(error))
        yield ServedModel(base_url=server.base_url, model=server.model, log_path=server.log_path)
    finally:
        server.stop()
