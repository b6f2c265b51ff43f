"""Nothing is paid twice, and the data does not depend on interruptions: a remote teacher (a real OpenAI-compatible
server on loopback, :mod:`tests.openai_server`) is cut off mid-run by ``kill -9`` or Ctrl-C, during generation and
during evaluation, on the local engine and on Ray; the re-run pays exactly the calls that were never answered (counted
at the server) and writes what an uninterrupted run wrote. Also: whose key the teacher sends where.

Every run is the real ``hfsynth`` command in a subprocess. The server holds the answers after the 5th request, so the
run is cut at an exact point: 5 answered, 2 in flight (``max_concurrency: 2``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml
from huggingface_hub import HfApi

from hfsynth.cache import CallCache
from tests.cli_helpers import cli_environment, one_error_line, run_cli
from tests.hub_fixtures import HubUsers
from tests.openai_server import OpenAIServer, openai_server

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]
#: The user's Hub token, made for each test session (none is written into the code): it must never reach the recipe's
#: own server.
HUB_TOKEN = f"hf_{secrets.token_hex(17)}"
ANSWERED, IN_FLIGHT = 5, 2  # where a run is cut: answers before the server holds, requests it then holds
STAGES = {"generate": 12, "evaluate": 12}  # teacher calls of the whole stage (3 labels x 4 calls; 12 test texts)


def write_recipe(folder: Path, base_url: str, **teacher: Any) -> Path:
    data = {
        "name": "paid-once",
        "task": {"name": "sentiment", "description": "Classify the sentiment of a review."},
        "labels": [{"name": name} for name in LABELS],
        "languages": ["en"],
        "teacher": {"backend": "remote", "model": "test-org/teacher", "base_url": base_url, "max_concurrency": 2,
                    "max_retries": 0, "timeout": 60, "sampling": {"max_new_tokens": 64, "temperature": 0.8},
                    **teacher},
        "generation": {"samples_per_label": 8, "samples_per_call": 2, "top_up_rounds": 0, "min_words": 3,
                       "max_words": 30},
        "curation": {"min_words": 3, "max_words": 60, "language_id": False},
        "dataset": {"repo_id": "me/paid-once"},
        "evaluation": {"sets": [{"language": "en", "path": str(ROOT / "data/nusax_senti/english/test.jsonl")}],
                       "max_samples": STAGES["evaluate"]},
        "quality": {"enabled": False},
        "execution": {"teacher": {"num_cpus": 0}},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def command(stage: str, recipe: Path, out: Path, ray: str | None) -> list[str]:
    return [sys.executable, "-m", "hfsynth.cli", stage, str(recipe), "--out", str(out),
            *(["--ray", ray] if ray else [])]


def run_stage(stage: str, folder: Path, out: Path, ray: str | None = None) -> OpenAIServer:
    """The stage run to its end against a fresh server; the server (its requests) for the test to count."""
    with openai_server(LABELS) as server:
        recipe = write_recipe(folder, server.base_url)
        result = subprocess.run(command(stage, recipe, out, ray), env=cli_environment(HF_TOKEN=HUB_TOKEN),
                                capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    return server


def cached(out: Path) -> int:
    """Answers in the run's call cache, read beside the run that writes it."""
    path = out / "cache" / "teacher_calls.sqlite"
    if not path.is_file():
        return 0
    with sqlite3.connect(path, timeout=10) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not there yet
            return 0


def bodies(server: OpenAIServer) -> list[str]:
    return sorted(json.dumps(body, sort_keys=True) for body in server.bodies)


def what_it_wrote(stage: str, out: Path) -> Any:
    if stage == "generate":
        dataset = datasets.load_from_disk(str(out / "dataset"))
        return {split: dataset[split].to_list() for split in dataset}
    return (out / "eval" / "predictions.jsonl").read_text()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, list[str]]]:
    """What each stage writes and asks when nothing interrupts it."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    done = {}
    for stage, calls in STAGES.items():
        server = run_stage(stage, folder, folder / "run")
        assert server.received == calls
        done[stage] = (what_it_wrote(stage, folder / "run"), bodies(server))
    return done


def interrupt(stage: str, folder: Path, out: Path, how: str, ray: str | None) -> None:
    """Runs the stage until the server holds its answers, then: ``kill`` (SIGKILL), ``ctrl-c`` (SIGINT, then the
    held answers arrive) or ``ctrl-c-hung`` (SIGINT, the server never answers). Checks what the cache then holds."""
    with openai_server(LABELS, hold_after=ANSWERED) as server:
        recipe = write_recipe(folder, server.base_url)
        process = subprocess.Popen(command(stage, recipe, out, ray), env=cli_environment(HF_TOKEN=HUB_TOKEN),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            server.wait_for(lambda s: s.received == ANSWERED + IN_FLIGHT and cached(out) == ANSWERED, timeout=300)
            time.sleep(0.3)  # nothing more goes out while the answers are held
            assert server.received == ANSWERED + IN_FLIGHT
            if how == "kill":
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                expected = ANSWERED
            else:
                started = time.monotonic()
                process.send_signal(signal.SIGINT)
                if how == "ctrl-c":
                    time.sleep(1.5)  # the interruption reaches every thread (and Ray replica) first
                    server.release()  # the requests in flight are answered: paid, so kept
                stderr = process.communicate(timeout=60)[1]
                assert process.returncode == 130, stderr
                assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
                assert time.monotonic() - started < 20  # not the 60 s timeout of the hung requests
                expected = ANSWERED + IN_FLIGHT if how == "ctrl-c" else ANSWERED
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert server.received == ANSWERED + IN_FLIGHT  # no request went out after the interruption
    with CallCache(out / "cache" / "teacher_calls.sqlite") as cache:
        assert len(cache) == expected  # every answer that arrived, and only those


def check_resumed(stage: str, folder: Path, out: Path, paid_before: int,
                  uninterrupted: dict[str, tuple[Any, list[str]]]) -> None:
    server = run_stage(stage, folder, out)  # on the local engine: the cache is the same on both
    written, asked = uninterrupted[stage]
    assert server.received == STAGES[stage] - paid_before  # exactly the calls never answered
    assert set(bodies(server)) <= set(asked)  # asked as the uninterrupted run asked them (same seeds)
    assert what_it_wrote(stage, out) == written


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("how", ["kill", "ctrl-c", "ctrl-c-hung"])
def test_interrupted_then_resumed_pays_once_on_the_local_engine(
        stage: str, how: str, uninterrupted: dict[str, tuple[Any, list[str]]], tmp_path: Path) -> None:
    out = tmp_path / "run"
    interrupt(stage, tmp_path, out, how, ray=None)
    check_resumed(stage, tmp_path, out, ANSWERED + IN_FLIGHT if how == "ctrl-c" else ANSWERED, uninterrupted)


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One small Ray node on loopback that the runs' drivers join (``--ray ADDRESS``)."""
    from ray.cluster_utils import Cluster

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [saved])])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@pytest.mark.ray
@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("how", ["kill", "ctrl-c", "ctrl-c-hung"])
def test_interrupted_then_resumed_pays_once_on_ray(stage: str, how: str, ray_address: str,
                                                   uninterrupted: dict[str, tuple[Any, list[str]]],
                                                   tmp_path: Path) -> None:
    out = tmp_path / "run"
    interrupt(stage, tmp_path, out, how, ray=ray_address)
    check_resumed(stage, tmp_path, out, ANSWERED + IN_FLIGHT if how == "ctrl-c" else ANSWERED, uninterrupted)


# --- whose key goes where -------------------------------------------------------------------------------------------


def test_a_recipe_from_the_hub_warns_and_its_server_never_gets_the_hub_token(
        hub_users: HubUsers, hub_api: HfApi, hub_repo_id: str, tmp_path: Path) -> None:
    with openai_server(LABELS) as server:
        recipe = write_recipe(tmp_path, server.base_url)
        data = yaml.safe_load(recipe.read_text())
        del data["evaluation"]  # a published recipe with no local data files
        recipe.write_text(yaml.safe_dump(data))
        hub_api.create_repo(hub_repo_id, repo_type="dataset")
        hub_api.upload_file(path_or_fileobj=str(recipe), path_in_repo="recipe.yaml", repo_id=hub_repo_id,
                            repo_type="dataset")
        source = f"hf://datasets/{hub_repo_id}/recipe.yaml"
        # Bob runs alice's recipe, with his own token in the environment.
        result = run_cli("generate", source, "--out", str(tmp_path / "run"), HF_TOKEN=hub_users.bob.token)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (f"warning: {source} sends the teacher's requests to {server.base_url} (a server the recipe names) with "
            "no API key") in " ".join(output.split())
    assert server.received == STAGES["generate"]
    assert not any(hub_users.bob.token in value for headers in server.headers for value in headers.values())
    assert all("authorization" not in headers for headers in server.headers)


def test_api_key_env_sends_that_key_and_an_unset_one_is_one_line(tmp_path: Path) -> None:
    with openai_server(LABELS) as server:
        recipe = write_recipe(tmp_path, server.base_url, api_key_env="PAID_ONCE_SERVER_KEY")
        line = one_error_line(run_cli("generate", str(recipe), "--out", str(tmp_path / "unset"),
                                      HF_TOKEN=HUB_TOKEN))
        assert line == ("error: teacher.api_key_env: the environment variable PAID_ONCE_SERVER_KEY is not set: "
                        f"export it with the API key of {server.base_url}")
        assert server.received == 0
        result = run_cli("generate", str(recipe), "--out", str(tmp_path / "run"), HF_TOKEN=HUB_TOKEN,
                         PAID_ONCE_SERVER_KEY="sk-the-servers-own-key")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [headers.get("authorization") for headers in server.headers] == ["Bearer sk-the-servers-own-key"] * 12
