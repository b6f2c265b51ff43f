"""`hfsynth hub serve` as a user runs it: real server processes, real huggingface_hub clients.

Covers what only the command and the process boundary show: tokens from a file and from HFSYNTH_HUB_TOKENS (and
out of the process list), one server per data folder, and one-line errors for bad specs and unusable folders.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from hfsynth.hub_server.data_dir import DataDirError
from hfsynth.hub_server.server import HubServer
from hfsynth.hub_server.tokens import TOKENS_VARIABLE, parse_token_spec

REPO_ROOT = Path(__file__).resolve().parents[1]


def _environment(**extra: str) -> dict[str, str]:
    """The test's environment, with this checkout's hfsynth first and no tokens from the caller's shell."""
    environment = {name: value for name, value in os.environ.items() if name != TOKENS_VARIABLE}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return environment | extra


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "hfsynth.cli", "hub", "serve", *arguments]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_failing(*arguments: str, **environment: str) -> str:
    """Run `hfsynth hub serve` expecting it to refuse to start; its stderr, checked to be one error line."""
    try:
        result = subprocess.run(
            _command("--port", str(_free_port()), *arguments),
            env=_environment(**environment),
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("`hfsynth hub serve` started (or hung) instead of refusing with an error")
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


class ServerProcess:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited: {self.log.read_text()}"
            try:
                httpx.get(f"{self.url}/api/whoami-v2", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"the server on {self.url} did not answer within {timeout} s")

    def stop(self) -> int:
        """Ctrl-C, then the exit code: 130 after the graceful shutdown; -9 if it had to be killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends: uvicorn shuts down cleanly
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(*arguments: str, **environment: str) -> ServerProcess:
        port = _free_port()
        log = tmp_path / f"server-{len(started)}.log"
        with open(log, "w") as output:
            process = subprocess.Popen(
                _command("--port", str(port), *arguments),
                env=_environment(**environment),
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        server.wait_until_serving()
        return server

    yield start
    for server in started:
        server.stop()


def test_tokens_from_a_file_and_the_environment_stay_out_of_the_process_list(start_server, tmp_path: Path) -> None:
    secret = {name: f"hf_{name}_{secrets.token_hex(12)}" for name in ("alice", "carol", "dave", "erin")}
    token_file = tmp_path / "tokens.txt"
    token_file.write_text(
        "# who may use the rehearsal Hub\n"
        f"alice:{secret['alice']}:write:org-one,org-two   # alice publishes for both orgs\n"
        "\n"
        f"   carol:{secret['carol']}#not-a-comment:read\n"
    )
    # Whitespace of any kind separates specs in the variable; commas stay inside the ORG list.
    environment = {TOKENS_VARIABLE: f"dave:{secret['dave']}:write:org-one,org-three\n  erin:{secret['erin']}:read"}
    server = start_server("--data-dir", str(tmp_path / "hub"), "--token-file", str(token_file), **environment)

    def whoami(token: str) -> tuple[str, str, list[str]]:
        me = HfApi(endpoint=server.url, token=token).whoami()
        return me["name"], me["auth"]["accessToken"]["role"], [org["name"] for org in me["orgs"]]

    assert whoami(secret["alice"]) == ("alice", "write", ["org-one", "org-two"])
    assert whoami(secret["carol"] + "#not-a-comment") == ("carol", "read", [])  # a '#' inside a token is kept
    assert whoami(secret["dave"]) == ("dave", "write", ["org-one", "org-three"])
    assert whoami(secret["erin"]) == ("erin", "read", [])
    created = HfApi(endpoint=server.url, token=secret["dave"]).create_repo("org-three/from-the-environment")
    assert created.repo_id == "org-three/from-the-environment"

    command_line = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().decode()
    assert str(token_file) in command_line and not [name for name, token in secret.items() if token in command_line]
    assert server.stop() in (0, 130)
    output = server.log.read_text()
    assert "Hub API on" in output and not [name for name, token in secret.items() if token in output]


@pytest.mark.parametrize(
    ("file_lines", "variable", "option", "expected"),
    [
        # A swapped token and role: the token would be the reported field, so nothing of the spec is repeated.
        (["alice:{s}:write", "# fine so far", "bob:write:{s}"], None, None, "{file} line 3: the third field must be"),
        (["alice:{s}:write:org-one:extra"], None, None, "{file} line 1: a token spec is USER:TOKEN"),
        ([], "alice:{s}:write:org-one,org-two bob:{s}", None, f"{TOKENS_VARIABLE} spec 2: a token spec is"),
        (["alice:{s}:admin"], None, None, "{file} line 1: the third field must be 'read' or 'write'"),
        (["al!ce:{s}:write"], None, None, "{file} line 1: USER and ORG must be names"),
        (["bob:{s}:read"], None, "alice:{s}:write", "{file} line 1: the same token is already given by --token #1"),
    ],
)
def test_bad_token_specs_fail_in_one_line_that_never_shows_the_token(
    tmp_path: Path, file_lines: list[str], variable: str | None, option: str | None, expected: str
) -> None:
    secret = f"hf_{secrets.token_hex(16)}"
    token_file = tmp_path / "tokens.txt"
    token_file.write_text("".join(line.format(s=secret) + "\n" for line in file_lines))
    arguments = ["--token-file", str(token_file)] + (["--token", option.format(s=secret)] if option else [])
    environment = {TOKENS_VARIABLE: variable.format(s=secret)} if variable else {}

    line = run_failing("--data-dir", str(tmp_path / "hub"), *arguments, **environment)
    assert expected.format(file=f"token file {token_file}") in line
    assert secret not in line
    assert not (tmp_path / "hub").exists()  # refused before anything was created


def test_an_unreadable_token_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tokens.txt"
    assert (
        run_failing("--token-file", str(missing))
        == f"error: cannot read token file {missing}: No such file or directory"
    )
    binary = tmp_path / "tokens.bin"
    binary.write_bytes(b"alice:\xff\xfe:write\n")
    assert run_failing("--token-file", str(binary)) == f"error: token file {binary} is not UTF-8 text"


def test_parse_token_spec_keeps_every_field_out_of_its_message() -> None:
    for spec in ["bob:write:hf_swapped", "hf_swapped!:bob:write", "bob:hf_ok:write:hf_swapped!"]:
        with pytest.raises(ValueError) as error:
            parse_token_spec(spec)
        assert "hf_swapped" not in str(error.value), spec


def test_one_server_per_data_folder(start_server, tmp_path: Path) -> None:
    owner = parse_token_spec(f"carol:hf_carol_{secrets.token_hex(8)}:write")
    data_dir = tmp_path / "hub"
    first = start_server("--data-dir", str(data_dir), "--token", f"carol:{owner.token}:write")
    api = HfApi(endpoint=first.url, token=owner.token)
    api.create_repo("carol/kept")
    commit = api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id="carol/kept")

    # A second process on the same folder refuses to start, naming the owner, instead of serving beside it.
    line = run_failing("--data-dir", str(data_dir))
    assert line.startswith(f"error: {data_dir} is already served by another hub server (pid {first.process.pid} on ")
    with pytest.raises(DataDirError, match="already served by another hub server"):
        HubServer(data_dir=data_dir)  # in-process servers take the same lock
    assert first.process.poll() is None and api.model_info("carol/kept").sha == commit.oid

    # The lock goes with the process: the folder can be served again, with everything the first one wrote.
    assert first.stop() in (0, 130)
    with HubServer(data_dir=data_dir, tokens=[owner]) as again:
        assert HfApi(endpoint=again.url, token=owner.token).model_info("carol/kept").sha == commit.oid
        with pytest.raises(DataDirError, match=rf"\(pid {os.getpid()} on "):
            HubServer(data_dir=data_dir)


def test_a_data_dir_that_is_a_file_or_cannot_be_created(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    assert run_failing("--data-dir", str(a_file)) == f"error: hub data folder {a_file} is a file, not a folder"
    below_a_file = a_file / "hub"
    assert run_failing("--data-dir", str(below_a_file)) == (
        f"error: cannot use {below_a_file} as the hub data folder: Not a directory"
    )
    assert a_file.read_text() == "x"


@pytest.mark.parametrize(("port", "expected"), [("70000", "less than or equal to 65535"),
                                                ("-5", "greater than or equal to 1")])
def test_a_port_out_of_range_is_one_line(port: str, expected: str) -> None:
    line = run_failing(f"--port={port}")
    assert line.startswith("error: hfsynth hub serve: Invalid value for '--port'") and expected in line


def test_a_port_in_use_is_one_line_and_no_ready_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = run_failing("--port", str(port), "--data-dir", str(tmp_path / "hub"))  # run_failing: no "Hub API on"
    assert line == f"error: cannot listen on 127.0.0.1:{port}: already in use"


def test_token_on_the_command_line_warns_at_run_time_without_printing_it(start_server, tmp_path: Path) -> None:
    secret = f"hf_{secrets.token_hex(16)}"
    server = start_server("--data-dir", str(tmp_path / "hub"), "--token", f"alice:{secret}:write")
    assert HfApi(endpoint=server.url, token=secret).whoami()["name"] == "alice"
    server.stop()
    output = server.log.read_text()
    assert "warning: --token is visible to other users of this machine in `ps`" in output
    assert secret not in output


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c-while-sigint-ignored", "sigterm"])
def test_a_stopped_server_removes_its_temporary_folder_and_says_so(tmp_path: Path, stop: signal.Signals) -> None:
    """Without --data-dir the repos live in a temporary folder: however the server is stopped it goes, and the
    command says so (not "run the same command to resume"). Ctrl-C reaches it even when it was started with SIGINT
    ignored, as a non-interactive shell starts its background jobs."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    port = _free_port()
    process = subprocess.Popen(_command("--port", str(port)), env=_environment(TMPDIR=str(temporary)),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    server = ServerProcess(process, f"http://127.0.0.1:{port}", tmp_path / "unused.log")
    try:
        server.wait_until_serving()
        [data_dir] = temporary.glob("hfsynth-hub-*")
        process.send_signal(stop)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read() if process.stdout else ""
    assert code == (130 if stop == signal.SIGINT else 143), output
    assert not data_dir.exists() and not list(temporary.iterdir()), output
    assert "its temporary data folder and the repos in it were removed" in output
    assert "resume" not in output and "Traceback" not in output
