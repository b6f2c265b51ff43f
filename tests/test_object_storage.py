"""A run folder on object storage (hfsynth.storage) against a real S3-compatible server on loopback: what goes up
comes down the same, unchanged files are not sent again, a local copy resumes from storage, and a bad URI is one
line. The cluster case (nodes sharing no folder, a node killed) is in test_ray.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hfsynth.errors import HfsynthError
from hfsynth.storage import RunStorage, mirror_of, push_if_mirrored, run_folder_on
from tests.cli_helpers import free_port, one_error_line, run_cli

if TYPE_CHECKING:
    from tests.storage_fixtures import S3Server

pytest_plugins = ["tests.storage_fixtures"]


def write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def read_files(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): path.read_text() for path in folder.rglob("*") if path.is_file()}


def test_a_folder_goes_up_and_comes_down_the_same(s3_server: S3Server, tmp_path: Path) -> None:
    storage = RunStorage(s3_server.uri())
    files = {"hfsynth_student.json": "{}", "model.safetensors": "weights", "checkpoints/checkpoint-8/a.bin": "x"}
    write_files(tmp_path / "up", files)
    storage.upload(tmp_path / "up", "students/s")
    assert storage.exists("students/s") and not storage.exists("students/other")
    assert storage.exists("students/s/hfsynth_student.json") and not storage.exists("students/s/nope.json")
    assert storage.download("students/s", tmp_path / "down")
    assert read_files(tmp_path / "down") == files
    assert not storage.download("students/other", tmp_path / "none")

    # The checkpoint went away locally (the student finished): it goes away on storage too.
    (tmp_path / "up" / "checkpoints" / "checkpoint-8" / "a.bin").unlink()
    storage.upload(tmp_path / "up", "students/s", only_changed=True)
    assert storage.download("students/s", tmp_path / "again")
    assert set(read_files(tmp_path / "again")) == {"hfsynth_student.json", "model.safetensors"}


def test_only_changed_files_travel(s3_server: S3Server, tmp_path: Path) -> None:
    storage = RunStorage(s3_server.uri())
    write_files(tmp_path / "here", {"a.txt": "one", "b.txt": "two"})
    storage.upload(tmp_path / "here", "")
    # A copy brought down gets storage's times: nothing of it is newer than storage, nothing goes up again.
    storage.download("", tmp_path / "copy")
    (tmp_path / "copy" / "a.txt").write_text("changed")
    os.utime(tmp_path / "copy" / "b.txt", (1, 1))  # older than storage's, same size: not sent
    storage.upload(tmp_path / "copy", "", only_changed=True)
    assert read_files(_download(storage, tmp_path / "check")) == {"a.txt": "changed", "b.txt": "two"}
    # A local file newer than storage's is kept when coming down with only_changed.
    (tmp_path / "copy" / "b.txt").write_text("local and newer")
    storage.download("", tmp_path / "copy", only_changed=True)
    assert (tmp_path / "copy" / "b.txt").read_text() == "local and newer"


def _download(storage: RunStorage, folder: Path) -> Path:
    storage.download("", folder)
    return folder


def test_a_local_copy_resumes_from_storage_and_sends_back(s3_server: S3Server, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "scratch"))
    uri = s3_server.uri()
    with run_folder_on(uri) as out:
        assert out.is_relative_to(tmp_path / "scratch") and mirror_of(out / "recipe-a") is not None
        write_files(out, {"dataset/data.arrow": "rows", "hfsynth.lock": ""})
        # A unit on a node sent a student up that this copy has not brought down yet: a push keeps it.
        write_files(tmp_path / "unit", {"hfsynth_student.json": "{}"})
        RunStorage(uri).upload(tmp_path / "unit", "students/s")
        push_if_mirrored(out / "recipe-a")  # as a stage does when it ends
        assert RunStorage(uri).exists("dataset") and not RunStorage(uri).exists("hfsynth.lock")
        write_files(out, {"eval/results.json": "{}"})
    assert mirror_of(out) is None
    # Another machine (another scratch folder) starts from what reached storage.
    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "elsewhere"))
    with run_folder_on(uri) as again:
        assert again != out
        assert read_files(again) == {"dataset/data.arrow": "rows", "eval/results.json": "{}",
                                     "students/s/hfsynth_student.json": "{}"}
    with run_folder_on(str(tmp_path / "plain")) as plain:
        assert plain == tmp_path / "plain" and mirror_of(plain) is None


def test_storage_nobody_answers_is_one_line(tmp_path: Path) -> None:
    uri = f"s3://bucket/run?endpoint_override=127.0.0.1:{free_port()}&scheme=http&region=us-east-1"
    with pytest.raises(HfsynthError, match=r"^--out s3://bucket/run: cannot read the run folder there"), \
            run_folder_on(uri):
        pass
    line = one_error_line(run_cli("evaluate", "recipes/quickstart.yaml", "--out", "s3://", timeout=60,
                                  HFSYNTH_SCRATCH=str(tmp_path)))
    assert line.startswith("error: --out s3://: name a bucket")
