"""The architecture's rules (docs/architecture.md) hold, and each rule fails when it is broken: a violation is
planted in a temporary copy of the package and the same check is run on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 450


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's contracts of ``root``'s pyproject.toml, on the package in ``root``."""
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", script, "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)


def oversized_modules(package: Path) -> dict[str, int]:
    sizes = {path.relative_to(package.parent).as_posix(): len(path.read_text().splitlines())
             for path in package.rglob("*.py")}
    return {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}


def test_the_import_contracts_hold() -> None:
    checked = lint_imports(ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout


def test_every_module_is_at_most_450_lines() -> None:
    assert oversized_modules(ROOT / "hfsynth") == {}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "hfsynth", tmp_path / "hfsynth", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def plant(module: Path, line: str) -> None:
    """``line`` inside a new function at the end of ``module``: an import there counts as much as one at the top."""
    module.write_text(module.read_text() + f"\n\ndef _planted() -> None:\n    {line}\n")


@pytest.mark.parametrize(("module", "line", "broken"), [
    # generation -> dataset while dataset -> generation: a cycle.
    ("generation/curation.py", "from hfsynth.dataset import save_dataset  # noqa",
     "No import cycles, between modules or between packages at any depth BROKEN"),
    # an engine that knows a stage.
    ("engines/base.py", "from hfsynth.training import planned_runs  # noqa",
     "Engines never import a stage BROKEN"),
    # core reaching up into the pipeline.
    ("recipe/schema.py", "from hfsynth.pipeline import run  # noqa",
     "Layers: cli -> pipeline -> stages -> engines -> core BROKEN"),
    # the Hub server importing the pipeline.
    ("hub_server/server.py", "from hfsynth.recipe.schema import Recipe  # noqa",
     "The loopback Hub server imports nothing of the pipeline BROKEN"),
])
def test_a_planted_violation_breaks_its_contract(copy: Path, module: str, line: str, broken: str) -> None:
    plant(copy / "hfsynth" / module, line)
    checked = lint_imports(copy)
    assert checked.returncode != 0
    assert broken in checked.stdout, checked.stdout + checked.stderr


def test_a_planted_long_module_is_found(copy: Path) -> None:
    module = copy / "hfsynth" / "generation" / "plan.py"
    module.write_text(module.read_text() + "\n" * MAX_MODULE_LINES)
    assert list(oversized_modules(copy / "hfsynth")) == ["hfsynth/generation/plan.py"]


def test_every_package_ships_in_the_wheel() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "hfsynth").rglob("__init__.py")}
    assert packages - listed == set()
