"""A training killed while a checkpoint was being written resumes from the last complete one; saved records are
written whole or not at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hfsynth.runs.folder import CHECKPOINTS_DIR, StudentFolder
from hfsynth.runs.records import TrainingRecord
from hfsynth.students.training_args import CHECKPOINT_COMPLETE_MARKER, last_complete_checkpoint


def _checkpoint(folder: Path, step: int, complete: bool) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if complete:
        (path / CHECKPOINT_COMPLETE_MARKER).write_text("{}")
    return path


def test_an_incomplete_checkpoint_is_deleted_and_the_last_complete_one_chosen(tmp_path: Path) -> None:
    older = _checkpoint(tmp_path, 5, complete=True)
    complete = _checkpoint(tmp_path, 10, complete=True)
    cut_short = _checkpoint(tmp_path, 15, complete=False)  # Ctrl-C while checkpoint-15 was being written
    (tmp_path / "hfsynth_run.txt").write_text("fingerprint")
    (tmp_path / "checkpoint-x").mkdir()  # not a Trainer folder: left alone
    assert last_complete_checkpoint(tmp_path) == str(complete)
    assert not cut_short.exists() and older.is_dir() and (tmp_path / "checkpoint-x").is_dir()
    assert last_complete_checkpoint(tmp_path) == str(complete)  # and again on the next re-run


def test_no_checkpoint_to_resume_from(tmp_path: Path) -> None:
    assert last_complete_checkpoint(tmp_path / "absent") is None
    only_cut_short = _checkpoint(tmp_path, 5, complete=False)
    assert last_complete_checkpoint(tmp_path) is None and not only_cut_short.exists()


def test_a_record_is_replaced_whole(tmp_path: Path) -> None:
    record = TrainingRecord(train_size=None, train_rows=16, languages=["en"], seed=0, repeat=0, seconds=1.0,
                            fingerprint="abc", hfsynth_version="0")
    path = tmp_path / "record.json"
    record.save(path)
    assert json.loads(path.read_text())["train_rows"] == 16
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no partial file left beside it


@pytest.mark.slow
def test_setfit_training_killed_while_saving_a_checkpoint_resumes(tmp_path: Path) -> None:
    from hfsynth.students.base import Student
    from hfsynth.training import train_students
    from tests.student_helpers import Interrupt, InterruptAfterSave, StepRecorder, make_recipe, synthetic_dataset

    student = {"name": "setfit", "kind": "setfit", "model": "all-minilm-l6-v2",
               "params": {"num_iterations": 1, "batch_size": 8, "max_steps": 4, "save_steps": 1}}
    recipe = make_recipe([student])
    dataset = synthetic_dataset(per_label=2)
    checkpoints = tmp_path / "students" / "setfit" / CHECKPOINTS_DIR
    with pytest.raises(Interrupt):
        train_students(recipe, dataset, tmp_path, callbacks=[InterruptAfterSave(step=2)])
    # What a kill during the save of step 3 leaves: its files but the state, which the Trainer writes last.
    shutil.copytree(checkpoints / "checkpoint-2", checkpoints / "checkpoint-3")
    (checkpoints / "checkpoint-3" / CHECKPOINT_COMPLETE_MARKER).unlink()

    recorder = StepRecorder()
    outcome, = train_students(recipe, dataset, tmp_path, callbacks=[recorder])
    assert recorder.started_at == 2 and recorder.steps_run == 2  # from the complete checkpoint-2
    assert StudentFolder(outcome.run.directory).meta.is_file() and not checkpoints.exists()
    assert Student.load(outcome.run.directory).predict(["A new phone was released."], ["en"])[0]
