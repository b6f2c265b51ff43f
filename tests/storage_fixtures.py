"""Real S3-compatible servers on loopback for the object-storage tests: the real ``pyarrow.fs`` S3 client talks to
them over HTTP, as it would to S3 or MinIO. Two independent implementations: moto's server (Python, a package of the
test extra) and s3rver (Node, installed by ``scripts/setup.sh --test`` into ``.venv/npm``), which, like older MinIO
and Ceph RGW, does not understand AWS's chunked checksum framing.

``s3_server`` is moto (the Ray tests use it); ``any_s3_server`` is each server in turn."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_helpers import free_port

BUCKET = "hfsynth-runs"
PLAIN_BODIES = "AWS_REQUEST_CHECKSUM_CALCULATION"
#: Credentials moto accepts (any): the variables every S3 client reads.
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "hfsynth-test", "AWS_SECRET_ACCESS_KEY": "hfsynth-test-secret",
                    "AWS_DEFAULT_REGION": "us-east-1"}
#: The only credentials s3rver accepts.
S3RVER_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
                      "AWS_DEFAULT_REGION": "us-east-1"}
#: s3rver as scripts/setup.sh --test installs it (HFSYNTH_S3RVER: another path).
S3RVER = Path(os.environ.get("HFSYNTH_S3RVER") or Path(sys.prefix) / "npm" / "node_modules" / ".bin" / "s3rver")


@dataclass(frozen=True)
class S3Server:
    port: int
    name: str = "moto"
    credentials: tuple[tuple[str, str], ...] = tuple(MOTO_CREDENTIALS.items())

    def uri(self, prefix: str | None = None, bucket: str = BUCKET) -> str:
        """A fresh run folder URI on the server (pyarrow's query options point the client at it)."""
        prefix = prefix or uuid.uuid4().hex[:12]
        return f"s3://{bucket}/{prefix}?endpoint_override=127.0.0.1:{self.port}&scheme=http&region=us-east-1"

    def filesystem(self):  # noqa: ANN201 - pyarrow.fs.S3FileSystem
        """A client of the server that bypasses hfsynth (to look at or damage what it stored)."""
        import pyarrow.fs

        # Plain bodies (s3rver keeps AWS's checksum framing as the object): read when the client is made.
        saved = os.environ.get(PLAIN_BODIES)
        os.environ[PLAIN_BODIES] = "WHEN_REQUIRED"
        try:
            return pyarrow.fs.S3FileSystem(endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                           region="us-east-1", allow_bucket_creation=True,
                                           **_keys(dict(self.credentials)))
        finally:
            if saved is None:
                os.environ.pop(PLAIN_BODIES)
            else:
                os.environ[PLAIN_BODIES] = saved

    def objects(self, uri: str) -> dict[str, bytes]:
        """Every object under the run URI ``uri`` (hfsynth's own records aside), read past hfsynth."""
        import pyarrow.fs

        filesystem, root = self.filesystem(), uri.split("://", 1)[1].split("?", 1)[0].rstrip("/")
        infos = filesystem.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
        found = {}
        for info in infos:
            name = info.path[len(root) + 1:]
            if info.type == pyarrow.fs.FileType.File and not name.startswith(".hfsynth/"):
                with filesystem.open_input_stream(info.path) as stream:
                    found[name] = stream.read()
        return found

    def put(self, uri: str, name: str, data: bytes) -> None:
        """Write ``data`` to the object ``name`` of the run URI ``uri``, past hfsynth."""
        root = uri.split("://", 1)[1].split("?", 1)[0].rstrip("/")
        with self.filesystem().open_output_stream(f"{root}/{name}") as stream:
            stream.write(data)


def _keys(credentials: dict[str, str]) -> dict[str, str]:
    return {"access_key": credentials["AWS_ACCESS_KEY_ID"], "secret_key": credentials["AWS_SECRET_ACCESS_KEY"]}


def _moto(port: int, data: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _s3rver(port: int, data: Path) -> subprocess.Popen[bytes]:
    if not S3RVER.is_file():
        pytest.fail(f"{S3RVER}: s3rver is not installed: run scripts/setup.sh --test (or set HFSYNTH_S3RVER)")
    # s3rver 3.7.1 makes its listings' continuation tokens with a cipher OpenSSL 3 (Node 17+) keeps in its legacy
    # provider: without it every listing with a delimiter is a 500.
    return subprocess.Popen([str(S3RVER), "-d", str(data), "-a", "127.0.0.1", "-p", str(port), "-s",
                             "--configure-bucket", BUCKET], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=os.environ | {"NODE_OPTIONS": "--openssl-legacy-provider"})


SERVERS = {"moto": (_moto, MOTO_CREDENTIALS), "s3rver": (_s3rver, S3RVER_CREDENTIALS)}


def serve(name: str, port: int | None = None, data: Path | None = None) -> Iterator[S3Server]:
    """The server ``name`` on ``port`` (default: a free loopback port) with the bucket BUCKET, its credentials in the
    environment; s3rver keeps its objects in ``data`` (default: a temporary folder, deleted at the end)."""
    start, credentials = SERVERS[name]
    own_data = data is None
    port, data = port or free_port(), data or Path(tempfile.mkdtemp(prefix=f"hfsynth-{name}-"))
    server = start(port, data)
    saved = {key: os.environ.get(key) for key in credentials}
    os.environ.update(credentials)
    try:
        handle = S3Server(port, name, tuple(credentials.items()))
        filesystem = handle.filesystem()
        deadline = time.monotonic() + 60
        while True:
            try:
                filesystem.create_dir(BUCKET)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield handle
    finally:
        server.terminate()
        server.wait(timeout=30)
        if own_data:
            shutil.rmtree(data, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    yield from serve("moto")


@pytest.fixture(scope="module", params=sorted(SERVERS))
def any_s3_server(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    yield from serve(request.param)


@dataclass(frozen=True)
class GuardedS3:
    """moto enforcing IAM: ``keys`` may read and write the bucket but not put objects under ``readonly/``."""

    server: S3Server
    keys: dict[str, str]


@pytest.fixture(scope="module")
def guarded_s3() -> Iterator[GuardedS3]:
    import json

    import boto3

    port = free_port()
    # The first 4 requests (bucket, user, policy, key) go unchecked; every later one needs the user's keys.
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=os.environ | {"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1",
                   "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        deadline = time.monotonic() + 60
        while True:
            try:
                boto3.client("s3", **options).create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        iam = boto3.client("iam", **options)
        iam.create_user(UserName="writer")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/readonly/*"}]}
        iam.put_user_policy(UserName="writer", PolicyName="no-readonly", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="writer")["AccessKey"]
        keys = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                "AWS_DEFAULT_REGION": "us-east-1"}
        yield GuardedS3(S3Server(port, "moto with IAM", tuple(keys.items())), keys)
    finally:
        server.terminate()
        server.wait(timeout=30)
