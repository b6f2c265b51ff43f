"""The command line's own behaviour: one line per user mistake, and a start that loads no model library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hfsynth.cli import app

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_recipes_validate_rejects_a_student_param_typo_in_one_line(tmp_path: Path) -> None:
    recipe = yaml.safe_load((REPO_ROOT / "recipes" / "quickstart.yaml").read_text(encoding="utf-8"))
    recipe["students"][0]["params"] = {"num_iteratons": 3}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    # The quickstart's data paths are relative to recipes/.
    evaluation = recipe["evaluation"]
    for seed_set in [*recipe["generation"].get("seeds", []), *evaluation["sets"],
                     *evaluation.get("reference", {}).get("sets", [])]:
        if "path" in seed_set:
            seed_set["path"] = str((REPO_ROOT / "recipes" / seed_set["path"]).resolve())
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")

    result = CliRunner().invoke(app, ["recipes", "validate", str(path)])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert "students[0].params.num_iteratons" in line and "unknown setfit parameter" in line


def test_recipes_validate_imports_no_model_library() -> None:
    probe = ("import sys; from typer.testing import CliRunner; from hfsynth.cli import app; "
             "result = CliRunner().invoke(app, ['recipes', 'validate', 'recipes/quickstart.yaml']); "
             "assert result.exit_code == 0, result.output; "
             "print(sorted(m for m in ('setfit', 'trl', 'peft', 'torch', 'transformers', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert out.strip() == "[]"
