"""First-run robustness: mistakes a new user makes end as one line naming the file or value and what to do."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hfsynth.cache import CallCache, checkpoint
from hfsynth.cli import app
from hfsynth.dataset import save_dataset
from hfsynth.errors import HfsynthError
from hfsynth.generation.stage import generate_samples
from hfsynth.hub.publish import push_dataset
from hfsynth.hub_server.server import HubServer
from hfsynth.recipes.files import load_recipe, parse_recipe
from tests.hub_fixtures import HubUsers
from tests.scripted_teacher import ScriptedTeacher

ROOT = Path(__file__).resolve().parents[1]


def recipe_data(**changes: object) -> dict:
    data = {
        "name": "first-run",
        "task": {"name": "topic", "description": "Classify the topic of a sentence."},
        "labels": [{"name": "sports"}, {"name": "health"}],
        "languages": ["en"],
        "teacher": {"model": "smollm2-135m-instruct", "batch_size": 2, "sampling": {"max_new_tokens": 24}},
        "generation": {"samples_per_label": 1, "samples_per_call": 1, "min_words": 3, "max_words": 10},
        "curation": {"language_id": False, "min_words": 1},
        "dataset": {"repo_id": "me/first-run"},
    }
    data.update(changes)
    return data


def write_recipe(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_data(**changes)))
    return path


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def error_line(output: str) -> str:
    """The command's one error line (after whatever it printed before the error)."""
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and output.rstrip().endswith(errors[0]), output
    return errors[0]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


# --- --out --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["generate", "train", "evaluate", "run"])
def test_out_that_is_a_file(tmp_path: Path, command: str) -> None:
    recipe = write_recipe(tmp_path)
    (tmp_path / "taken").write_text("not a folder")
    code, output = invoke(command, str(recipe), "--out", str(tmp_path / "taken"))
    assert code == 1
    assert one_line(output) == f"error: --out {tmp_path / 'taken'}: is a file, not a folder: give a folder for the run"
    code, output = invoke(command, str(recipe), "--out", str(tmp_path / "taken" / "run"))
    assert code == 1
    assert one_line(output) == (f"error: --out {tmp_path / 'taken' / 'run'}: cannot create it: "
                                f"{tmp_path / 'taken'} is a file, not a folder")


def test_out_that_cannot_be_written(tmp_path: Path) -> None:
    # Root ignores permission bits; /proc refuses new folders to everyone.
    code, output = invoke("generate", str(write_recipe(tmp_path)), "--out", "/proc/hfsynth-run")
    assert code == 1
    assert one_line(output).startswith("error: --out /proc/hfsynth-run: cannot create it in /proc (")


# --- the teacher call cache ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["not a database", "malformed"])
def test_damaged_cache_is_one_line_naming_the_file(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "run" / "cache" / "teacher_calls.sqlite"
    cache.parent.mkdir(parents=True)
    if damage == "not a database":
        cache.write_text("this is not SQLite\n" * 100)
    else:
        with CallCache(cache) as good:
            good.put_many({str(i): "answer " * 500 for i in range(100)})
        data = bytearray(cache.read_bytes())
        data[4096 * 2 :: 7] = b"\x55" * len(data[4096 * 2 :: 7])
        cache.write_bytes(bytes(data))
    code, output = invoke("generate", str(write_recipe(tmp_path)), "--out", str(tmp_path / "run"))
    assert code == 1
    line = error_line(output)
    assert line.startswith(f"error: {cache}: the teacher call cache is damaged (")
    assert "move it aside or delete it (with teacher_calls.sqlite-wal and teacher_calls.sqlite-shm" in line


def test_answers_are_in_the_main_file_after_a_kill(tmp_path: Path) -> None:
    """Killed between batches: the .sqlite alone (copied without its -wal) has every committed answer."""
    cache = tmp_path / "run" / "teacher_calls.sqlite"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from hfsynth.cache import CallCache\n"
        "cache = CallCache(Path(sys.argv[1]))\n"
        "for batch in range(3):\n"
        "    cache.put_many({f'{batch}/{i}': 'answer ' * 200 for i in range(50)})\n"
        "os._exit(0)  # no close: as a kill would leave it\n"
    )
    subprocess.run([sys.executable, "-c", script, str(cache)], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    copy = tmp_path / "copy" / "teacher_calls.sqlite"
    copy.parent.mkdir()
    copy.write_bytes(cache.read_bytes())  # the main file only, as a careless copy would take it
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 150
    # checkpoint() merges and removes what a killed run left beside the cache.
    checkpoint(cache)
    assert not Path(f"{cache}-wal").exists() or Path(f"{cache}-wal").stat().st_size == 0
    with CallCache(cache) as reopened:
        assert len(reopened) == 150


# --- generation that keeps nothing --------------------------------------------------------------------------------


def test_generation_that_keeps_nothing_fails_clearly(tmp_path: Path) -> None:
    # The scripted teacher writes 6-word texts: curation asking for 20 to 30 words keeps none.
    recipe = parse_recipe(recipe_data(curation={"language_id": False, "min_words": 20, "max_words": 30},
                                      generation={"samples_per_label": 2, "samples_per_call": 2}))
    result = generate_samples(recipe, ScriptedTeacher(), tmp_path / "cache.sqlite")
    with pytest.raises(HfsynthError) as error:
        save_dataset(recipe, result, tmp_path / "dataset")
    message = str(error.value)
    assert message.startswith("generation kept no samples at all (dropped there: too_short ")
    assert "loosen curation (min_words, max_words, language_id)" in message and "\n" not in message
    assert not (tmp_path / "dataset").exists()


def test_generation_that_leaves_a_label_empty_names_it(tmp_path: Path) -> None:
    recipe = parse_recipe(recipe_data(generation={"samples_per_label": 2, "samples_per_call": 2}))
    result = generate_samples(recipe, ScriptedTeacher(), tmp_path / "cache.sqlite")
    result.samples = [sample for sample in result.samples if sample.label != "health"]
    with pytest.raises(HfsynthError, match=r"generation kept no samples for 'health' in en \(dropped there: "):
        save_dataset(recipe, result, tmp_path / "dataset")


def test_generate_states_the_plan_before_starting(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, generation={"samples_per_label": 3, "samples_per_call": 2})
    assert load_recipe(recipe).planned_calls == 2 * 1 * 2
    # A damaged cache stops generation before the teacher loads, right after the plan is stated.
    cache = tmp_path / "run" / "cache" / "teacher_calls.sqlite"
    cache.parent.mkdir(parents=True)
    cache.write_text("damaged")
    code, output = invoke("generate", str(recipe), "--out", str(tmp_path / "run"))
    assert code == 1
    # First, wrapped at the terminal's width.
    assert " ".join(output.split()).startswith("plan: 4 teacher calls (2 labels x 1 language(s) x 3 samples in calls "
                                               "of 2), then top-up calls for what curation drops error: ")


# --- the Hub ------------------------------------------------------------------------------------------------------


def test_missing_file_in_an_existing_hub_repo(tmp_path: Path, hub_server: HubServer, hub_repo_id: str,
                                              hub_users: HubUsers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", hub_users.alice.token)
    recipe = parse_recipe(recipe_data(dataset={"repo_id": hub_repo_id}))
    result = generate_samples(recipe, ScriptedTeacher(), tmp_path / "cache.sqlite")
    save_dataset(recipe, result, tmp_path / "dataset")
    push_dataset(recipe, tmp_path / "dataset")
    code, output = invoke("recipes", "validate", f"hf://datasets/{hub_repo_id}/absent.yaml")
    assert code == 1
    assert one_line(output) == (f"error: cannot download recipe hf://datasets/{hub_repo_id}/absent.yaml: "
                                f"{hub_repo_id} has no file absent.yaml")
    code, output = invoke("recipes", "validate", "hf://datasets/alice/no-such-repo/recipe.yaml")
    assert one_line(output).endswith("repository alice/no-such-repo not found, or your token cannot see it")
    assert hub_users.alice.token not in output
