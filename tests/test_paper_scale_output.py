"""The paper's 11-language topic recipe run end to end by the real ``hfsynth run``, its teacher the load teacher (a
real OpenAI-compatible server on loopback answering with real SIB-200 training sentences,
:mod:`benchmarks.load_teacher`), piped to a file at 80 columns: every number of every language is there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from benchmarks.load_teacher import SIB200_FOLDERS, load_teacher, topic_recipe
from hfsynth.recipes.files import load_recipe
from tests.cli_helpers import run_cli


def test_an_eleven_language_run_piped_at_80_columns_shows_every_number(tmp_path: Path) -> None:
    changes = {"students": [], "quality": {"enabled": False}}
    path = topic_recipe(tmp_path, 4, **changes)
    data = yaml.safe_load(path.read_text())
    data["evaluation"] = {"sets": data["evaluation"]["sets"], "max_samples": 14, "teacher_examples_per_label": 0}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    with load_teacher(load_recipe(path)) as teacher:
        data["teacher"]["base_url"] = teacher.base_url
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        shown = run_cli("run", str(path), "--out", str(tmp_path / "run"), timeout=900, COLUMNS="80",
                        HF_HUB_OFFLINE="1")
        assert shown.returncode == 0, shown.stderr
        assert teacher.requests > 0
    output = shown.stdout + shown.stderr
    assert [line for line in output.splitlines() if len(line) > 80] == [] and "…" not in output
    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    teacher_rows = {entry["language"]: entry for entry in results["summary"] if entry["role"] == "teacher"}
    assert set(teacher_rows) == set(SIB200_FOLDERS)
    for language, entry in teacher_rows.items():
        # A row per language, its macro-F1 whole on it (not cut to "0.…").
        assert re.search(rf"^\W*{language}\b.*{entry['macro_f1']:.3f}", output, re.MULTILINE), (language, output)
    generation = json.loads((tmp_path / "run" / "dataset" / "generation.json").read_text())
    assert set(generation["per_language_label"]) == set(SIB200_FOLDERS)
    assert generation["teacher_tokens"]["calls"] == generation["calls"] > 0
