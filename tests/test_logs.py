"""Quiet by default: a real `hfsynth train` on a tiny SetFit recipe prints hfsynth's table and nothing of the
libraries' warnings, logs or progress bars; `-v` (or HFSYNTH_VERBOSITY=info) shows them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.student_helpers import LABELS, synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
# What the libraries print today during a SetFit training (warnings, INFO chatter, tqdm bars, Trainer log dicts).
LIBRARY_NOISE = ("model_head.pkl not found", "pin_memory", "it/s]", "Running training", "embedding_loss",
                 "train_runtime")

pytestmark = pytest.mark.slow


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    for variable in ("HFSYNTH_VERBOSITY", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS",
                     "HF_DATASETS_DISABLE_PROGRESS_BARS", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY"):
        if variable not in (env or {}):
            environment.pop(variable, None)
    return subprocess.run([sys.executable, "-m", "hfsynth.cli", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    synthetic_dataset(per_label=4, languages=("en",)).save_to_disk(str(tmp_path / "run" / "dataset"))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "task": {"name": "topic", "description": "Classify the topic."},
        "labels": [{"name": label} for label in LABELS], "languages": ["en"],
        "teacher": {"model": "smollm2-135m-instruct"}, "dataset": {"repo_id": "me/tiny"},
        "students": [{"name": "sf", "kind": "setfit", "model": "all-minilm-l6-v2",
                      "params": {"num_iterations": 1, "batch_size": 8}}],
    }))
    return tmp_path


def test_train_is_quiet_by_default_and_verbose_with_v(tiny_run: Path) -> None:
    quiet = run_cli("train", "recipe.yaml", "--out", "run", cwd=tiny_run)
    assert quiet.returncode == 0, quiet.stderr
    assert "trained" in quiet.stderr  # hfsynth's own table (its console is stderr)
    assert "training steps (sf)" in quiet.stderr  # and its own progress display
    for noise in LIBRARY_NOISE:
        assert noise not in quiet.stdout + quiet.stderr, noise
    assert quiet.stdout == ""

    for student_dir in (tiny_run / "run" / "students").iterdir():  # train again, not "already trained"
        subprocess.run(["rm", "-rf", str(student_dir)], check=True)
    verbose = run_cli("-v", "train", "recipe.yaml", "--out", "run", cwd=tiny_run)
    assert verbose.returncode == 0, verbose.stderr
    output = verbose.stdout + verbose.stderr
    for noise in ("model_head.pkl not found", "pin_memory", "it/s]", "Running training"):
        assert noise in output, noise


def test_verbosity_from_the_environment(tiny_run: Path) -> None:
    result = run_cli("train", "recipe.yaml", "--out", "run", cwd=tiny_run, env={"HFSYNTH_VERBOSITY": "info"})
    assert result.returncode == 0, result.stderr
    assert "model_head.pkl not found" in result.stderr


def test_unknown_verbosity_is_one_line(tmp_path: Path) -> None:
    result = run_cli("recipes", "validate", str(ROOT / "recipes" / "quickstart.yaml"), cwd=tmp_path,
                     env={"HFSYNTH_VERBOSITY": "loud"})
    assert result.returncode == 1
    expected = "error: HFSYNTH_VERBOSITY='loud': use quiet, info or debug (or 0, 1, 2)"
    assert result.stderr.strip().splitlines() == [expected]
