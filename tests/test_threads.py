"""Torch's thread count comes from hfsynth (``HFSYNTH_THREADS``), never from the launcher: the same dataset and the
same teacher and student scores with ``OMP_NUM_THREADS=1`` (what ``ray job submit`` sets) and without; OpenMP
waits passively (``hfsynth.reproducibility``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml

from hfsynth.errors import HfsynthError
from hfsynth.reproducibility import DEFAULT_THREADS, compute_threads, training_threads
from tests.cli_helpers import cli_environment, one_error_line, run_cli

ROOT = Path(__file__).resolve().parents[1]


def clean_environment(**extra: str) -> dict[str, str]:
    environment = cli_environment()
    environment.pop("OMP_WAIT_POLICY", None)  # this test process imported hfsynth, which set it
    return environment | extra


def python(code: str, **environment: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], env=clean_environment(**environment), capture_output=True,
                            text=True, timeout=120, check=True)
    return result.stdout.strip()


def test_thread_settings_and_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HFSYNTH_THREADS", raising=False)
    assert compute_threads() == DEFAULT_THREADS
    monkeypatch.setenv("HFSYNTH_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert compute_threads() == 3
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv("HFSYNTH_THREADS", bad)
        with pytest.raises(HfsynthError, match=f"HFSYNTH_THREADS='{bad}': give a whole number"):
            compute_threads()
    monkeypatch.setenv("HFSYNTH_TRAINING_THREADS", "x")
    with pytest.raises(HfsynthError, match="HFSYNTH_TRAINING_THREADS='x'"):
        training_threads()


def test_the_launchers_omp_num_threads_does_not_set_the_count_and_waits_are_passive() -> None:
    code = ("import hfsynth, os; from hfsynth.reproducibility import pin_threads; import torch; pin_threads(); "
            "print(torch.get_num_threads(), os.environ.get('OMP_WAIT_POLICY'))")
    environment = {"OMP_NUM_THREADS": "1"}
    assert python(code, **environment) == f"{DEFAULT_THREADS} PASSIVE"
    assert python(code, HFSYNTH_THREADS="3", **environment) == "3 PASSIVE"
    assert python(code, OMP_WAIT_POLICY="ACTIVE") == f"{DEFAULT_THREADS} ACTIVE"  # a policy already set is kept
    assert python(code, GOMP_SPINCOUNT="300000") == f"{DEFAULT_THREADS} None"  # so is spinning the user tuned


def test_openmp_really_stops_spinning_when_hfsynth_comes_first() -> None:
    # libgomp prints the settings it loaded with: no spinning at barriers (GOMP_SPINCOUNT 0) only after hfsynth.
    def spin_count(code: str) -> str:
        result = subprocess.run([sys.executable, "-c", code], env=clean_environment(OMP_DISPLAY_ENV="VERBOSE"),
                                capture_output=True, text=True, timeout=120, check=True)
        return next(line.split("=")[1].strip() for line in result.stderr.splitlines() if "GOMP_SPINCOUNT" in line)

    work = "torch.ones(64, 64) @ torch.ones(64, 64)"
    assert spin_count(f"import hfsynth, torch; {work}") == "'0'"
    assert spin_count(f"import torch; {work}") != "'0'"  # libgomp's default: spin first


def test_a_bad_thread_setting_is_one_line_from_the_cli(tmp_path: Path) -> None:
    result = run_cli("run", str(ROOT / "recipes" / "quickstart.yaml"), "--out", str(tmp_path / "run"),
                     HFSYNTH_THREADS="many")
    assert "HFSYNTH_THREADS='many'" in one_error_line(result)


def tiny_recipe(folder: Path) -> Path:
    """SmolLM2 teacher in bfloat16 (where the thread count changes results), a SetFit student, 24 test sentences."""
    data = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    data["name"] = "threads"
    data["teacher"]["batch_size"] = 4
    data["teacher"]["sampling"]["max_new_tokens"] = 48
    data["generation"].update(samples_per_label=2, samples_per_call=2)
    data["generation"]["seeds"][0]["path"] = str(ROOT / "data/sib200/eng_Latn/train.jsonl")
    data["curation"]["language_id"] = False
    data["evaluation"]["sets"][0]["path"] = str(ROOT / "data/sib200/eng_Latn/test.jsonl")
    data["evaluation"]["max_samples"] = 24
    del data["evaluation"]["reference"]
    data["quality"] = {"enabled": False}
    data["students"] = [data["students"][0] | {"params": {"num_iterations": 1, "batch_size": 8}, "repeats": 1}]
    path = folder / "threads.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow
def test_same_dataset_and_scores_with_omp_num_threads_1_and_without(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path)
    outcomes = []
    for name, environment in (("one", {"OMP_NUM_THREADS": "1"}), ("default", {})):
        out = tmp_path / name
        result = run_cli("run", str(recipe), "--out", str(out), timeout=900, **environment)
        assert result.returncode == 0, result.stdout + result.stderr
        texts = datasets.load_from_disk(str(out / "dataset"))["train"]["text"]
        rows = json.loads((out / "eval" / "results.json").read_text())["rows"]
        outcomes.append((texts, sorted((row["role"], row["model"], row["macro_f1"], json.dumps(row["per_label"]))
                                       for row in rows)))
    (texts_one, scores_one), (texts_default, scores_default) = outcomes
    assert texts_one and texts_one == texts_default
    assert {role for role, *_ in scores_one} == {"teacher", "student"}
    assert scores_one == scores_default
