"""Publishing through the real huggingface_hub/datasets clients to the loopback Hub server, and reading back."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard, HfApi

from hfsynth.dataset import save_dataset
from hfsynth.errors import HfsynthError
from hfsynth.generation.stage import generate_samples
from hfsynth.hub.publish import load_recipe_source, parse_hub_path, push_dataset
from hfsynth.recipes.files import load_recipe
from tests.hub_fixtures import HubUsers
from tests.scripted_teacher import ScriptedTeacher

RECIPE = """\
name: publish-test
task: {name: topic, description: Classify the topic of a sentence.}
labels: [{name: sports}, {name: health}]
languages: [en]
teacher: {model: smollm2-135m-instruct}
generation: {samples_per_label: 5, samples_per_call: 5, min_words: 3, max_words: 10}
curation: {language_id: false, min_words: 3}
dataset: {repo_id: REPO, license: cc-by-4.0}
"""


@pytest.fixture
def dataset_dir(tmp_path: Path, hub_repo_id: str) -> tuple[Path, Path]:
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(RECIPE.replace("REPO", hub_repo_id))
    recipe = load_recipe(recipe_path)
    result = generate_samples(recipe, ScriptedTeacher(), tmp_path / "cache.sqlite")
    save_dataset(recipe, result, tmp_path / "dataset")
    return recipe_path, tmp_path / "dataset"


@pytest.fixture
def as_alice(monkeypatch: pytest.MonkeyPatch, hub_users: HubUsers) -> str:
    monkeypatch.setenv("HF_TOKEN", hub_users.alice.token)
    return hub_users.alice.token


def test_push_then_load_back_equal(dataset_dir, hub_repo_id: str, hub_api: HfApi, as_alice: str,  # noqa: ANN001
                                   caplog: pytest.LogCaptureFixture) -> None:
    recipe_path, folder = dataset_dir
    caplog.set_level(logging.DEBUG)
    push_dataset(load_recipe(recipe_path), folder)

    local = datasets.load_from_disk(str(folder))
    remote = datasets.load_dataset(hub_repo_id, download_mode="force_redownload")
    for split in ("train", "validation"):
        assert remote[split].features == local[split].features
        assert remote[split].to_list() == local[split].to_list()

    card = DatasetCard.load(hub_repo_id)
    assert card.data.license == "cc-by-4.0" and "synthetic" in card.data.tags
    assert card.data.task_categories == ["text-classification"]
    assert card.data.to_dict().get("configs"), "datasets' configs must survive our card"
    assert "arxiv.org/abs/2601.16278" in card.text
    files = set(hub_api.list_repo_files(hub_repo_id, repo_type="dataset"))
    assert {"README.md", "recipe.yaml", "dropped.jsonl", "generation.json"} <= files

    # The token is in no pushed file and no log line.
    for name in files:
        path = hub_api.hf_hub_download(hub_repo_id, name, repo_type="dataset")
        assert as_alice.encode() not in Path(path).read_bytes()
    assert as_alice not in caplog.text


def test_republish_is_idempotent(dataset_dir, hub_repo_id: str, hub_api: HfApi, as_alice: str) -> None:  # noqa: ANN001
    recipe_path, folder = dataset_dir
    push_dataset(load_recipe(recipe_path), folder)
    commits = hub_api.list_repo_commits(hub_repo_id, repo_type="dataset")
    push_dataset(load_recipe(recipe_path), folder)
    assert hub_api.list_repo_commits(hub_repo_id, repo_type="dataset") == commits


def test_push_with_read_only_token_is_one_clear_error(dataset_dir, hub_users: HubUsers,  # noqa: ANN001
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    recipe_path, folder = dataset_dir
    monkeypatch.setenv("HF_TOKEN", hub_users.alice_read.token)
    with pytest.raises(HfsynthError) as error:
        push_dataset(load_recipe(recipe_path), folder)
    message = str(error.value)
    assert "403" in message and "\n" not in message
    assert hub_users.alice_read.token not in message


def test_recipe_from_the_hub(dataset_dir, hub_repo_id: str, as_alice: str) -> None:  # noqa: ANN001
    recipe_path, folder = dataset_dir
    push_dataset(load_recipe(recipe_path), folder)
    recipe = load_recipe_source(f"hf://datasets/{hub_repo_id}/recipe.yaml")
    assert recipe.name == "publish-test" and recipe.source_text == recipe_path.read_text()
    with pytest.raises(HfsynthError, match=f"hf://datasets/{hub_repo_id}/absent.yaml"):
        load_recipe_source(f"hf://datasets/{hub_repo_id}/absent.yaml")


def test_parse_hub_path() -> None:
    assert parse_hub_path("hf://datasets/me/ds/recipes/a.yaml") == ("dataset", "me/ds", "recipes/a.yaml")
    assert parse_hub_path("hf://me/model/recipe.yaml") == ("model", "me/model", "recipe.yaml")
    with pytest.raises(HfsynthError, match="expected hf://"):
        parse_hub_path("hf://datasets/only-name")
