"""`hfsynth recipes validate` finds what later commands would fail on: bad data files, labels, a missing engine and
plans of unbounded work. Each is one line from validate, and the same line from the command, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hfsynth.cli import app
from hfsynth.recipes.checks import MAX_BOOTSTRAP_DRAWS, MAX_TRAINING_RUNS
from tests.test_validation_cli import one_line, with_

SETFIT = {"kind": "setfit", "model": "all-minilm-l6-v2"}


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


GOOD_ROWS = [{"text": "The match ended in a draw.", "label": "sports"},
             {"text": "Drink water every day.", "label": "health"}]

FILE_CASES = [
    # (id, data file content, recipe field the file goes to, later command, expected text)
    ("null text in a seed file", _jsonl([{"text": None, "label": "sports"}, *GOOD_ROWS]), "generation.seeds",
     "generate", "row 1: column 'text' must be a non-empty text, got None"),
    ("an int as the first text", _jsonl([{"text": 5, "label": "sports"}, *GOOD_ROWS]), "evaluation.sets",
     "evaluate", "row 1: column 'text' must be a non-empty text, got 5"),
    ("an empty label", _jsonl([*GOOD_ROWS, {"text": "A goal.", "label": None}]), "evaluation.sets", "evaluate",
     "row 3: column 'label' is empty"),
    ("a blank file", "\n\n  \n", "evaluation.sets", "evaluate", "the file is empty: it needs labelled rows"),
    ("a truncated file", _jsonl(GOOD_ROWS) + '{"text": "cut sho', "evaluation.sets", "evaluate",
     "cannot load labelled data from"),
    ("no label column", _jsonl([{"text": "A goal.", "topic": "sports"}]), "evaluation.sets", "evaluate",
     "no column 'label'"),
    ("a label the recipe does not know", _jsonl([*GOOD_ROWS, {"text": "Stocks fell.", "label": "business"}]),
     "evaluation.reference.sets", "train", "labels ['business'] are not in the recipe's labels; map them"),
]


def _same_line_from_validate_and(command: str, recipe: Path, out: Path) -> str:
    runner = CliRunner()
    validate = runner.invoke(app, ["recipes", "validate", str(recipe)])
    name, *options = command.split()
    later = runner.invoke(app, [name, str(recipe), "--out", str(out), *options])
    assert validate.exit_code == 1 and later.exit_code == 1, validate.output
    line = one_line(validate.output)
    assert line.startswith(f"error: {recipe}: ") and one_line(later.output) == line
    assert not out.exists()  # stopped before any work
    return line


@pytest.mark.parametrize(("content", "field", "command", "expected"), [case[1:] for case in FILE_CASES],
                         ids=[case[0] for case in FILE_CASES])
def test_bad_data_files_fail_validation_naming_file_row_and_column(tmp_path: Path, content: str, field: str,
                                                                   command: str, expected: str) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(content)
    good = tmp_path / "good.jsonl"
    good.write_text(_jsonl(GOOD_ROWS))
    changes: dict = {"evaluation.sets": [{"language": "en", "path": "good.jsonl"}]}
    if field == "generation.seeds":
        changes |= {"generation.strategy": "few-shot", field: [{"language": "en", "path": "data.jsonl"}]}
    elif field == "evaluation.reference.sets":
        changes |= {field: [{"language": "en", "path": "data.jsonl"}], "students": [{"name": "s", **SETFIT}]}
    else:
        changes[field] = [{"language": "en", "path": "data.jsonl"}]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(with_(changes)))
    line = _same_line_from_validate_and(command, recipe, tmp_path / "run")
    index = 0
    assert f"field '{field}[{index}].path': " in line and str(data) in line and expected in line, line


MANY_RUNS = [{"name": f"s{index}", **SETFIT, "train_sizes": list(range(1, 11)), "repeats": 1000}
             for index in range(2)]
RECIPE_CASES = [
    ("a blank label", {"labels": [{"name": "sports"}, {"name": "   "}]},
     "field 'labels[1].name': a label name must have a visible character, got '   '"),
    ("labels equal but for case", {"labels": [{"name": "Sports"}, {"name": "health"}, {"name": "sports"}]},
     "field 'labels[2].name': 'sports' differs from label 'Sports' only in case or spaces"),
    ("repeats beyond the bound", {"students": [{"name": "s", **SETFIT, "repeats": 1_000_000_000}]},
     "field 'students[0].repeats': Input should be less than or equal to 1000"),
    ("train size beyond the bound", {"students": [{"name": "s", **SETFIT, "train_sizes": [100_000]}]},
     "field 'students[0].train_sizes[0]': Input should be less than or equal to 10000"),
    ("bootstrap resamples beyond the bound", {"evaluation.bootstrap_resamples": 10**12},
     "field 'evaluation.bootstrap_resamples': Input should be less than or equal to 100000"),
    ("too many trainings", {"students": MANY_RUNS},
     (f"field 'students': the plan is 22,000 trainings (students x (1 + train_sizes) x repeats, twice for reference "
      f"students), more than {MAX_TRAINING_RUNS:,}")),
    ("too many bootstrap scores",
     {"students": [{**MANY_RUNS[0], "train_sizes": [1, 2, 3, 4, 5, 6]}], "evaluation.bootstrap_resamples": 100_000},
     (f"field 'evaluation.bootstrap_resamples': 100,000 resamples x 7,001 scored models x 1 test language(s) is "
      f"700,100,000 bootstrap scores, more than {MAX_BOOTSTRAP_DRAWS:,}")),
]


@pytest.mark.parametrize(("changes", "expected"), [case[1:] for case in RECIPE_CASES],
                         ids=[case[0] for case in RECIPE_CASES])
def test_labels_and_planned_work_fail_validation(tmp_path: Path, changes: dict, expected: str) -> None:
    (tmp_path / "test.jsonl").write_text(_jsonl(GOOD_ROWS))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(with_({"evaluation.sets": [{"language": "en", "path": "test.jsonl"}],
                                            **changes})))
    line = _same_line_from_validate_and("train", recipe, tmp_path / "run")
    assert expected in line, line


def test_engine_ray_without_ray_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hfsynth.recipes.checks

    # Ray is installed in the test environment: stand in for one where it is not (find_spec is all the check asks).
    monkeypatch.setattr(hfsynth.recipes.checks, "find_spec", lambda name: None)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(with_({"execution.engine": "ray"})))
    line = _same_line_from_validate_and("generate", recipe, tmp_path / "run")
    assert "field 'execution.engine': 'ray' needs Ray, which is not installed: pip install 'hfsynth[ray]'" in line


def test_a_train_size_the_data_cannot_fill_is_announced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from hfsynth.training import _warn_if_short, per_label_subset, planned_runs
    from tests.student_helpers import make_recipe, synthetic_dataset

    recipe = make_recipe([{"name": "s", **SETFIT, "train_sizes": [1000, 2]}])
    train = synthetic_dataset(per_label=2)["train"]  # 2 per label and language: 12 rows
    runs = {run.train_size: run for run in planned_runs(recipe, tmp_path)}
    with caplog.at_level(logging.WARNING, logger="hfsynth"):
        for size in (2, 1000):
            _warn_if_short(runs[size], per_label_subset(train, size, seed=0))
    [record] = caplog.records
    assert record.getMessage() == ("student s: train size 1000 asks for 1000 examples per label and language, but the "
                                   "synthetic data has as few as 2: the run trains on 12 examples in all, and its "
                                   "results say so")
