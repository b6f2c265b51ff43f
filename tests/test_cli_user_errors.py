"""User mistakes around publishing and the Space, through the real command: one `error:` line, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hfsynth.dataset import save_dataset
from hfsynth.generation.stage import generate_samples
from hfsynth.hub.publish import push_folder
from hfsynth.recipes.files import load_recipe
from tests.cli_helpers import one_error_line, run_cli
from tests.scripted_teacher import ScriptedTeacher
from tests.test_publish import RECIPE


@pytest.fixture
def generated_run(tmp_path: Path) -> tuple[Path, Path]:
    """A recipe and a run folder with a synthetic dataset (a scripted teacher: no model)."""
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(RECIPE.replace("REPO", "alice/user-errors"))
    recipe = load_recipe(recipe_path)
    save_dataset(recipe, generate_samples(recipe, ScriptedTeacher(), tmp_path / "cache.sqlite"),
                 tmp_path / "run" / "dataset")
    return recipe_path, tmp_path / "run"


def _dead_endpoint() -> str:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_a_hub_path_with_dot_segments_is_one_line() -> None:
    line = one_error_line(run_cli("recipes", "validate", "hf://datasets/me/recipes/../../etc/passwd"))
    assert line == "error: hf://datasets/me/recipes/../../etc/passwd: a Hub path may not contain '.' or '..' segments"


@pytest.mark.parametrize("command", ["publish", "space deploy"])
def test_commands_that_read_a_run_refuse_a_file_or_a_missing_folder(generated_run, command: str) -> None:
    recipe, run = generated_run
    missing = run.parent / "no-such-run"
    assert one_error_line(run_cli(*command.split(), str(recipe), "--out", str(missing))) == (
        f"error: --out {missing}: no such folder: give the run folder `hfsynth generate` and `train` wrote")
    assert one_error_line(run_cli(*command.split(), str(recipe), "--out", str(recipe))) == (
        f"error: --out {recipe}: is a file, not a run folder")
    empty = run.parent / "empty"
    empty.mkdir()
    assert "not a run folder (no dataset/ or students/ in it)" in one_error_line(
        run_cli(*command.split(), str(recipe), "--out", str(empty)))


def test_publish_to_an_endpoint_where_nothing_listens_names_it(generated_run) -> None:
    recipe, run = generated_run
    endpoint = _dead_endpoint()
    line = one_error_line(run_cli("publish", str(recipe), "--out", str(run), HF_ENDPOINT=endpoint, HF_TOKEN="hf_x"))
    assert line.startswith("error: push of dataset failed: alice/user-errors: cannot reach the Hub at "
                           f"{endpoint} (ConnectError"), line


def test_space_deploy_with_an_invalid_repo_id_is_one_line(generated_run) -> None:
    recipe, run = generated_run
    line = one_error_line(run_cli("space", "deploy", str(recipe), "--out", str(run), "--repo-id", "bad id/x y"))
    assert line.startswith("error: Space repo id 'bad id/x y' is not a valid Hub repo id (Repo id must use"), line


def test_push_folder_deletes_what_the_folder_no_longer_has(hub_server, hub_api: HfApi, hub_repo_id: str,
                                                           hub_users, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", hub_users.alice.token)
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "app.py").write_text("v1")
    (folder / "old.txt").write_text("left by an earlier deploy")
    push_folder(folder, hub_repo_id, "space", False, "first", space_sdk="gradio")
    (folder / "old.txt").unlink()
    (folder / "app.py").write_text("v2")
    push_folder(folder, hub_repo_id, "space", False, "second", space_sdk="gradio", delete_patterns=["*"])
    assert sorted(hub_api.list_repo_files(hub_repo_id, repo_type="space")) == [".gitattributes", "app.py"]


def test_publish_of_a_run_folder_missing_a_record_is_one_line(generated_run) -> None:
    recipe, run = generated_run
    (run / "dataset" / "generation.json").unlink()  # a folder copied in part
    line = one_error_line(run_cli("publish", str(recipe), "--out", str(run), HF_ENDPOINT=_dead_endpoint()))
    assert line == (f"error: {run / 'dataset' / 'generation.json'}: missing: the run folder is incomplete; run the "
                    "stage that writes it (hfsynth generate, train or evaluate) again")


def test_a_hub_recipe_when_the_hub_cannot_be_reached_names_the_endpoint() -> None:
    endpoint = _dead_endpoint()
    line = one_error_line(run_cli("recipes", "validate", "hf://datasets/me/x/recipe.yaml", HF_ENDPOINT=endpoint))
    assert line.startswith("error: cannot download recipe hf://datasets/me/x/recipe.yaml: me/x: recipe.yaml is not in "
                           f"the local cache and the Hub at {endpoint} cannot be reached"), line
