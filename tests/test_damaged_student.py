"""A finished student whose files were damaged afterwards: one line naming its folder and the fix, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hfsynth.students.base import DamagedStudentError, Student
from hfsynth.training import train_students
from tests.run_helpers import STUDENT, fake_run
from tests.student_helpers import make_recipe, synthetic_dataset


def test_a_finished_student_without_loadable_weights_names_its_folder(tmp_path: Path) -> None:
    _, run = fake_run(tmp_path)  # the meta file says finished; the model files are a cut-short copy
    folder = run.student(STUDENT).root
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"__metadata")
    with pytest.raises(DamagedStudentError, match=rf"student folder {folder} is damaged: delete the folder and run "
                                                  r"`hfsynth train` again to retrain it \(\w+: .*\)"):
        Student.load(folder)


def test_a_folder_without_meta_is_not_called_damaged(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no finished student"):
        Student.load(tmp_path)


@pytest.mark.slow
def test_truncated_weights_or_a_garbage_head_of_a_trained_setfit_student(tmp_path: Path) -> None:
    student = {"name": "setfit", "kind": "setfit", "model": "all-minilm-l6-v2",
               "params": {"num_iterations": 1, "batch_size": 8}}
    outcome, = train_students(make_recipe([student]), synthetic_dataset(per_label=2), tmp_path)
    trained = outcome.run.directory
    truncated, garbage = tmp_path / "truncated", tmp_path / "garbage"
    shutil.copytree(trained, truncated)
    shutil.copytree(trained, garbage)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 10])
    (garbage / "model_head.pkl").write_bytes(bytes(range(256)) * 2)
    for folder, reason in ((truncated, "SafetensorError"), (garbage, "")):
        with pytest.raises(DamagedStudentError, match=rf"student folder {folder} is damaged: .* \({reason}"):
            Student.load(folder)
    assert Student.load(trained).predict(["A new phone was released."], ["en"])[0]


def test_the_space_column_of_a_damaged_student_says_what_to_do(tmp_path: Path) -> None:
    from hfsynth.space.app import ModelPool, ModelSpec

    recipe, run = fake_run(tmp_path)
    folder = run.student(STUDENT).root
    (folder / "model.safetensors").write_bytes(b"\x00" * 8)
    [outcome] = ModelPool(recipe, [ModelSpec(STUDENT, "student", "setfit", str(folder))]).predict(["A goal."], ["en"])
    assert outcome.error is not None and str(folder) in outcome.error and "delete the folder" in outcome.error
