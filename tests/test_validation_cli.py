"""Validation matches execution: each recipe mistake that would fail a later command fails `hfsynth recipes validate`
with one line, and the later command stops with that same line before doing any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hfsynth.cli import app
from hfsynth.realdata import load_labelled_set
from hfsynth.recipe.schema import MAX_SAMPLES_PER_LABEL
from hfsynth.recipes.files import load_recipe
from tests.test_recipe import minimal

ROOT = Path(__file__).resolve().parents[1]
SIB_EN = ROOT / "data" / "sib200" / "eng_Latn"




def with_(changes: dict) -> dict:
    data = minimal()
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


SETFIT = {"kind": "setfit", "model": "all-minilm-l6-v2"}
CASES = [
    # (id, recipe changes, the later command that would have failed, expected text in the one line)
    ("generation min_words > max_words", {"generation.min_words": 50, "generation.max_words": 10}, "generate",
     "field 'generation': min_words (50) is larger than max_words (10)"),
    ("curation min_words > max_words", {"curation.min_words": 50, "curation.max_words": 10}, "generate",
     "field 'curation': min_words (50) is larger than max_words (10): curation would drop every sample"),
    ("base_url with provider",
     {"teacher": {"backend": "remote", "model": "x/y", "base_url": "http://127.0.0.1:9/v1", "provider": "auto"}},
     "generate", "field 'teacher': give either base_url (an OpenAI-compatible server) or provider, not both"),
    ("few-shot seeds missing a language",
     {"languages": ["en", "de"], "generation.strategy": "few-shot",
      "generation.seeds": [{"language": "en", "path": str(SIB_EN / "train.jsonl"),
                            "label_map": {"science/technology": None, "travel": None, "politics": None,
                                          "entertainment": None, "geography": None}}]},
     "generate", "field 'generation.seeds': strategy few-shot has no seeds for languages ['de']"),
    ("evaluation set in a language not in the recipe",
     {"evaluation.sets": [{"language": "de", "path": str(SIB_EN / "test.jsonl")}]}, "evaluate",
     "field 'evaluation.sets[0].language': 'de' is not one of languages ['en']"),
    ("duplicate student names", {"students": [{"name": "s", **SETFIT}, {"name": "s", **SETFIT}]}, "train",
     "field 'students': duplicate student names ['s']"),
    ("invalid dataset repo id, checked before generating", {"dataset.repo_id": "my synthetic data"},
     "generate --push", "field 'dataset.repo_id': 'my synthetic data' is not a valid Hub repo id"),
    ("unknown student param", {"students": [{"name": "s", **SETFIT, "params": {"batch_sise": 8}}]}, "train",
     "field 'students[0].params.batch_sise': unknown setfit parameter"),
    ("invalid student repo id", {"students": [{"name": "s", "repo_id": "a--b", **SETFIT}]}, "train",
     "field 'students[0].repo_id': 'a--b' is not a valid Hub repo id (Cannot have -- or .. in repo_id)"),
    ("samples_per_label beyond the bound", {"generation.samples_per_label": 1_000_000_000}, "generate",
     f"field 'generation.samples_per_label': Input should be less than or equal to {MAX_SAMPLES_PER_LABEL}"),
    ("a plan of too many calls",
     {"languages": ["en", "de", "fr", "sw", "id", "th"], "labels": [{"name": f"l{i}"} for i in range(20)],
      "generation.samples_per_label": 100_000, "generation.samples_per_call": 1}, "generate",
     "field 'generation.samples_per_label': the plan is 12,000,000 teacher calls"),
    ("label_map onto an unknown label",
     {"evaluation.sets": [{"language": "en", "path": str(SIB_EN / "test.jsonl"), "label_map": {"a": "nope"}}]},
     "evaluate", "field 'evaluation.sets[0].label_map': maps onto unknown labels ['nope']"),
]


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize(("changes", "command", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_validate_and_the_later_command_give_the_same_line(tmp_path: Path, changes: dict, command: str,
                                                           expected: str) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(with_(changes)))
    runner = CliRunner()
    validate = runner.invoke(app, ["recipes", "validate", str(recipe)])
    name, *options = command.split()
    later = runner.invoke(app, [name, str(recipe), "--out", str(tmp_path / "run"), *options])
    assert validate.exit_code == 1 and later.exit_code == 1
    line = one_line(validate.output)
    assert line.startswith(f"error: {recipe}: ")
    assert expected in line
    assert one_line(later.output) == line
    assert not (tmp_path / "run").exists()  # stopped before any work


def test_empty_evaluation_file_fails_validation_and_evaluate(tmp_path: Path) -> None:
    (tmp_path / "test.jsonl").write_text("")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(with_({"evaluation.sets": [{"language": "en", "path": "test.jsonl"}]})))
    runner = CliRunner()
    validate = runner.invoke(app, ["recipes", "validate", str(recipe)])
    later = runner.invoke(app, ["evaluate", str(recipe), "--out", str(tmp_path / "run")])
    line = one_line(validate.output)
    assert line == f"error: {recipe}: field 'evaluation.sets[0].path': the file is empty: test.jsonl"
    assert later.exit_code == 1 and one_line(later.output) == line


def test_empty_or_header_only_files_say_so(tmp_path: Path) -> None:
    from hfsynth.errors import HfsynthError
    from hfsynth.recipe.schema import SeedSet

    (tmp_path / "blank.jsonl").write_text("\n\n")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(HfsynthError, match=r"blank.jsonl: the file is empty"):
        load_labelled_set(SeedSet(language="en", path=str(tmp_path / "blank.jsonl")), ["a", "b"])
    with pytest.raises(HfsynthError, match=r"header.csv: no rows \(only a header\?\)"):
        load_labelled_set(SeedSet(language="en", path=str(tmp_path / "header.csv")), ["a", "b"])


def test_label_map_to_null_drops_labels(tmp_path: Path) -> None:
    """pecher2026-intent keeps 10 of MASSIVE's 60 intents: the other 50 map to null, rows and all."""
    intent = load_recipe(ROOT / "recipes" / "pecher2026-intent.yaml")
    label_map = intent.evaluation.sets[0].label_map
    massive = [*intent.label_names, *label_map]
    assert len(set(massive)) == 60
    path = tmp_path / "massive.jsonl"
    path.write_text("".join(json.dumps({"utt": f"utterance {i}", "intent": name}) + "\n"
                            for i, name in enumerate(massive * 2)))
    seed_set = intent.evaluation.sets[0].model_copy(update={"hub_id": None, "path": str(path)})
    rows = load_labelled_set(seed_set, intent.label_names)
    assert len(rows) == 20 and set(rows["label"]) == set(intent.label_names)
    # A label that is neither kept nor dropped is still an error.
    partial = seed_set.model_copy(update={"label_map": dict(list(label_map.items())[1:])})
    with pytest.raises(Exception, match=r"not in the recipe's labels; map them with label_map"):
        load_labelled_set(partial, intent.label_names)
