"""A whole small run through the CLI with real embedded models: generate -> train -> evaluate -> cards -> publish.

The recipe is English sentiment (NusaX, 3 labels) with the embedded SmolLM2 teacher and a SetFit student, small
enough for a couple of minutes on 2 CPU cores. Later tests read the run the first one made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import yaml
from huggingface_hub import DatasetCard, HfApi, ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from typer.testing import CliRunner

from hfsynth.cache import CallCache
from hfsynth.cli import app
from tests.hub_fixtures import HubUsers

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]

pytestmark = pytest.mark.slow


def recipe_text(organization: str) -> str:
    return yaml.safe_dump({
        "name": "e2e-sentiment",
        "task": {"name": "sentiment", "description": "Classify the sentiment of a review or comment.",
                 "domain": "short customer reviews", "subjectivity": "medium"},
        "labels": [{"name": "negative", "description": "unhappy, critical"},
                   {"name": "neutral", "description": "factual, no opinion"},
                   {"name": "positive", "description": "happy, praising"}],
        "languages": ["en"],
        "teacher": {"model": "smollm2-135m-instruct", "batch_size": 2,
                    "sampling": {"max_new_tokens": 64, "temperature": 0.8, "repetition_penalty": 1.1}},
        "generation": {"samples_per_label": 4, "samples_per_call": 2, "min_words": 4, "max_words": 30,
                       "context": "You write short customer reviews of hotels and restaurants."},
        "curation": {"min_words": 3, "max_words": 60, "language_id": False},
        "dataset": {"repo_id": "e2e-sentiment-synthetic", "license": "apache-2.0"},
        "students": [{"name": "setfit-minilm", "kind": "setfit", "model": "all-minilm-l6-v2",
                      "params": {"num_iterations": 2, "batch_size": 8}}],
        "evaluation": {"sets": [{"language": "en", "path": str(ROOT / "data/nusax_senti/english/test.jsonl"),
                                 "dataset_id": "indonlp/NusaX-senti", "dataset_config": "eng"}],
                       "max_samples": 24},
        "publish": {"organization": organization},
    }, sort_keys=False)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, hub_users: HubUsers) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("e2e")
    recipe = workdir / "recipe.yaml"
    recipe.write_text(recipe_text(hub_users.alice.user))
    invoke("run", str(recipe), "--out", str(workdir / "run"))
    return recipe, workdir / "run"


def test_dataset_has_every_label_and_a_card(run: tuple[Path, Path]) -> None:
    _, out = run
    dataset = datasets.load_from_disk(str(out / "dataset"))
    assert dataset["train"].features["label"].names == LABELS
    labels = set(dataset["train"]["label"]) | set(dataset.get("validation", dataset["train"])["label"])
    assert labels == {0, 1, 2}
    assert set(dataset["train"]["teacher"]) == {"HuggingFaceTB/SmolLM2-135M-Instruct"}
    card = DatasetCard.load(out / "dataset" / "README.md")
    assert card.data.annotations_creators == ["machine-generated"] and "synthetic" in card.data.tags
    assert card.data.size_categories == ["n<1K"] and card.data.language == ["en"]
    assert "pecher-etal-2026-better" in card.text and "li-etal-2023-synthetic" in card.text
    assert (out / "dataset" / "recipe.yaml").read_text() == run[0].read_text()


def test_results_report_and_plots(run: tuple[Path, Path]) -> None:
    _, out = run
    results = json.loads((out / "eval" / "results.json").read_text())
    roles = {(entry["role"], entry["model"]) for entry in results["summary"]}
    assert roles == {("teacher", "HuggingFaceTB/SmolLM2-135M-Instruct"), ("student", "setfit-minilm")}
    for entry in results["summary"]:
        assert entry["n"] == 24 and 0.0 <= entry["macro_f1"] <= 1.0 and entry["texts_per_s"] > 0
    for plot in ("teacher_vs_students.png", "learning_curve.png"):
        assert (out / "eval" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "setfit-minilm" in (out / "eval" / "report.md").read_text()


def test_student_card_matches_results_and_validates(run: tuple[Path, Path], hub_server: object) -> None:
    _, out = run
    folder = out / "students" / "setfit-minilm"
    card = ModelCard.load(folder / "README.md")
    results = json.loads((out / "eval" / "results.json").read_text())
    mine = {entry["language"]: entry for entry in results["summary"] if entry["model"] == "setfit-minilm"}

    model_index = yaml.safe_load(card.content.split("---")[1])["model-index"]
    _, eval_results = model_index_to_eval_results(model_index)
    values = {(r.dataset_config, r.metric_type): r.metric_value for r in eval_results}
    assert values == {("eng", "f1"): mine["en"]["macro_f1"], ("eng", "accuracy"): mine["en"]["accuracy"]}
    assert {r.dataset_type for r in eval_results} == {"indonlp/NusaX-senti"}

    data = card.data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.library_name == "setfit" and data.pipeline_tag == "text-classification"
    assert data.datasets[0] == "alice/e2e-sentiment-synthetic"
    assert {"hfsynth", "synthetic-data", "distillation", "setfit"} <= set(data.tags)
    assert "arxiv.org/abs/2601.16278" in card.text and "pecher-etal-2026-better" in card.text
    assert "from setfit import SetFitModel" in card.text and "teacher_vs_students.png" in card.text
    assert (folder / "teacher_vs_students.png").is_file()
    card.validate(repo_type="model")  # the loopback Hub's /api/validate-yaml (hub_server)
    DatasetCard.load(out / "dataset" / "README.md").validate(repo_type="dataset")


def test_no_paths_or_temporary_folders_in_cards(run: tuple[Path, Path]) -> None:
    _, out = run
    for card in [out / "dataset" / "README.md", out / "students" / "setfit-minilm" / "README.md"]:
        text = card.read_text()
        for leak in (str(out), str(ROOT), "/tmp/", "/root/", os.path.expanduser("~") + "/"):
            assert leak not in text, f"{leak} in {card}"


def test_rerun_pays_nothing_twice(run: tuple[Path, Path]) -> None:
    recipe, out = run
    with CallCache(out / "cache" / "teacher_calls.sqlite") as cache:
        calls_before = len(cache)
    output = invoke("run", str(recipe), "--out", str(out))
    assert "already trained" in output
    with CallCache(out / "cache" / "teacher_calls.sqlite") as cache:
        assert len(cache) == calls_before


def test_publish_and_load_back(run: tuple[Path, Path], hub_users: HubUsers, hub_api: HfApi,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from setfit import SetFitModel

    recipe, out = run
    monkeypatch.setenv("HF_TOKEN", hub_users.alice.token)
    invoke("publish", str(recipe), "--out", str(out))
    model_id = "alice/e2e-sentiment-setfit-minilm"
    local_card = ModelCard.load(out / "students" / "setfit-minilm" / "README.md")
    assert ModelCard.load(model_id).content == local_card.content

    remote = SetFitModel.from_pretrained(model_id)
    local = SetFitModel.from_pretrained(str(out / "students" / "setfit-minilm"))
    texts = ["The room was dirty and the staff were rude.", "Breakfast was lovely, we will come back!"]
    assert list(remote.predict(texts)) == list(local.predict(texts))

    files = hub_api.list_repo_files(model_id)
    assert "README.md" in files and "teacher_vs_students.png" in files
    assert not any(name.startswith("checkpoints/") for name in files)
    commits = hub_api.list_repo_commits(model_id)
    invoke("publish", str(recipe), "--out", str(out))  # idempotent
    assert hub_api.list_repo_commits(model_id) == commits


def test_killed_generation_resumes_to_the_same_dataset(run: tuple[Path, Path], tmp_path: Path) -> None:
    recipe, finished = run
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "hfsynth.cli", "generate", str(recipe), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = out / "cache" / "teacher_calls.sqlite"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if cache.is_file():
            with CallCache(cache) as stored:
                if len(stored) > 0:
                    break
        time.sleep(0.5)
    assert process.poll() is None, "generation finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "dataset").exists()

    invoke("generate", str(recipe), "--out", str(out))
    resumed = datasets.load_from_disk(str(out / "dataset"))
    original = datasets.load_from_disk(str(finished / "dataset"))
    for split in original:
        assert resumed[split].to_list() == original[split].to_list()
