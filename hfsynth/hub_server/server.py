"""A loopback Hub-compatible HTTP server that the unmodified huggingface_hub, datasets and transformers talk to.

Point the clients at it with `HF_ENDPOINT=<url>` and `HF_HUB_DISABLE_XET=1` (there is no Xet CAS here: LFS files
travel through the plain git-LFS batch API), both set before huggingface_hub is imported.

Routes, payloads and error headers follow the Hub API as the clients call it (see the project's hub-api notes):
repos create/delete, repo info, tree, paths-info, preupload, NDJSON commits, the LFS batch API with basic transfer,
resolve (HEAD/GET with ranges), refs, commits, branches, tags, whoami and YAML validation.

The package, one module per concern: this one runs the server (in a thread, or in the foreground for the CLI);
`routing` is the ASGI app; `repo_api`, `browsing`, `writing` and `lfs` answer the routes; `access` and `tokens`
decide who may do what; `http_messages` parses requests and shapes error responses; `storage` persists repos in
the data folder, which `data_dir` locks for one server; `repo_model`, `tree_listing`, `lfs_rules`,
`front_matter` and `api_errors` hold the data model and the rules around it.

No module here but `publish` imports huggingface_hub: the test fixtures import the server to learn its URL before
the clients read HF_ENDPOINT.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from hfsynth.checks import bind_socket
from hfsynth.hub_server.data_dir import served_data_dir
from hfsynth.hub_server.routing import create_app
from hfsynth.hub_server.tokens import HubToken

logger = logging.getLogger(__name__)


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


def _uvicorn_config(app: Starlette, **options: Any) -> uvicorn.Config:
    # No access log: request lines carry signed upload URLs, and nothing here should ever print a header.
    return uvicorn.Config(app, access_log=False, timeout_graceful_shutdown=5, **options)


class HubServer:
    """The Hub app served by uvicorn on a background thread (tests, in-process use).

    The port is bound and the data folder claimed when the object is created, so `url` can go into HF_ENDPOINT
    before the clients are imported; requests are answered from `start()` on (before that, connections are
    refused). Without `data_dir`, repos live in a temporary folder removed by `stop()`. A data folder another
    server holds raises `hfsynth.hub_server.data_dir.DataDirError`.
    """

    def __init__(
        self, data_dir: Path | None = None, tokens: Sequence[HubToken] = (), host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._resources = contextlib.ExitStack()  # the data folder's lock (and temporary folder), the socket
        try:
            self.data_dir = self._resources.enter_context(served_data_dir(data_dir))
            self._socket = self._resources.enter_context(bind_socket(host, port, listen=False))
        except BaseException:
            self._resources.close()
            raise
        self.url = _url(self._socket, host)
        # log_config=None: leave the host application's (or pytest's) logging configuration alone.
        config = _uvicorn_config(create_app(self.data_dir, tokens), log_config=None, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> HubServer:
        if self._thread is not None:
            raise RuntimeError("HubServer already started")
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="hfsynth-hub-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The Hub server on {self.url} did not start")
            time.sleep(0.01)
        logger.info("Hub server listening on %s", self.url)
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._resources.close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    tokens: Sequence[HubToken],
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the server in the foreground until interrupted (the CLI entry point). `on_ready` gets the server's URL
    once the data folder is claimed and the port bound; a port that cannot be bound raises PortError first."""
    with served_data_dir(data_dir) as folder, bind_socket(host, port, listen=True) as sock:
        url = _url(sock, host)
        logger.info("Serving the Hub API on %s with data in %s", url, folder)
        if on_ready is not None:
            on_ready(url)
        uvicorn.Server(_uvicorn_config(create_app(folder, tokens))).run(sockets=[sock])
