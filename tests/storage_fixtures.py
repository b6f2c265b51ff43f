"""A real S3-compatible server on loopback (moto's server, a package of the test extra) for the object-storage
tests: the real ``pyarrow.fs`` S3 client talks to it over HTTP, as it would to S3 or MinIO."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_helpers import free_port

#: Credentials the server accepts (any): the variables every S3 client reads.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "hfsynth-test", "AWS_SECRET_ACCESS_KEY": "hfsynth-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "hfsynth-runs"


@dataclass(frozen=True)
class S3Server:
    port: int

    def uri(self, prefix: str | None = None) -> str:
        """A fresh run folder URI on the server (pyarrow's query options point the client at it)."""
        prefix = prefix or uuid.uuid4().hex[:12]
        return f"s3://{BUCKET}/{prefix}?endpoint_override=127.0.0.1:{self.port}&scheme=http&region=us-east-1"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        import pyarrow.fs

        filesystem = pyarrow.fs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                                             region="us-east-1", allow_bucket_creation=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                filesystem.create_dir(BUCKET)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield S3Server(port)
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
