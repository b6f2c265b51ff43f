"""A run folder on object storage (hfsynth.storage.mirror, hfsynth.storage.object_store) against two independent S3-compatible
servers on loopback (moto and s3rver): what goes up comes down the same and is checked both ways, unchanged files are
not sent again, a local copy resumes from storage (the truth), storage that cannot be used is one line before
anything runs, and the call cache goes up as it grows. The cluster case (nodes sharing no folder, a node killed) is
in test_ray.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hfsynth import pipeline
from hfsynth.cache import CallCache
from hfsynth.engines.base import LocalEngine
from hfsynth.errors import HfsynthError
from hfsynth.storage.mirror import RunStorage, mirror_of, push_if_mirrored, run_folder_on, shown_path
from hfsynth.storage.object_store import StorageError, storage_uri
from tests.cli_helpers import REPO_ROOT, cli_environment, free_port, one_error_line, run_cli
from tests.scripted_teacher import ScriptedTeacher
from tests.student_helpers import make_recipe

if TYPE_CHECKING:
    from hfsynth.recipe.schema import Recipe
    from tests.storage_fixtures import GuardedS3, S3Server

pytest_plugins = ["tests.storage_fixtures"]


def write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def read_files(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): path.read_text() for path in folder.rglob("*")
            if path.is_file() and path.name != "hfsynth.lock"}


def test_a_folder_goes_up_and_comes_down_the_same(any_s3_server: S3Server, tmp_path: Path) -> None:
    uri = any_s3_server.uri()
    storage = RunStorage(uri)
    files = {"hfsynth_student.json": "{}", "model.safetensors": "weights" * 1000,
             "checkpoints/checkpoint-8/a.bin": "x"}
    write_files(tmp_path / "up", files)
    storage.upload(tmp_path / "up", "students/s")
    assert storage.exists("students/s") and not storage.exists("students/other")
    assert storage.exists("students/s/hfsynth_student.json") and not storage.exists("students/s/nope.json")
    # Byte for byte on the store, read past hfsynth (s3rver keeps AWS's checksum framing as the body if sent it).
    assert {name: data.decode() for name, data in any_s3_server.objects(uri).items()} == \
        {f"students/s/{name}": text for name, text in files.items()}
    assert storage.download("students/s", tmp_path / "down")
    assert read_files(tmp_path / "down") == files
    assert not storage.download("students/other", tmp_path / "none")

    # The checkpoint went away locally (the student finished): it goes away on storage too.
    (tmp_path / "up" / "checkpoints" / "checkpoint-8" / "a.bin").unlink()
    storage.upload(tmp_path / "up", "students/s", only_changed=True)
    assert storage.download("students/s", tmp_path / "again")
    assert set(read_files(tmp_path / "again")) == {"hfsynth_student.json", "model.safetensors"}


def test_only_changed_files_travel(any_s3_server: S3Server, tmp_path: Path) -> None:
    storage = RunStorage(any_s3_server.uri())
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


def test_a_local_copy_resumes_from_storage_and_sends_back(any_s3_server: S3Server, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "scratch"))
    uri = any_s3_server.uri()
    with run_folder_on(uri) as out:
        assert out.is_relative_to(tmp_path / "scratch") and mirror_of(out / "recipe-a") is not None
        assert shown_path(out / "dataset") == f"{uri.split('?')[0]}/dataset"  # messages name the URI
        write_files(out, {"dataset/data.arrow": "rows"})
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


def test_storage_is_the_truth(any_s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's prefix deleted on storage starts the run afresh, though the scratch copy still has it; a file the
    scratch copy has but storage lost goes too."""
    import pyarrow.fs

    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "scratch"))
    uri = any_s3_server.uri()
    with run_folder_on(uri) as out:
        write_files(out, {"cache/teacher_calls.sqlite": "answers", "dataset/data.arrow": "rows"})
    root = uri.split("://", 1)[1].split("?")[0]
    any_s3_server.filesystem().delete_file(f"{root}/dataset/data.arrow")
    with run_folder_on(uri) as out:
        assert read_files(out) == {"cache/teacher_calls.sqlite": "answers"}
    any_s3_server.filesystem().delete_dir(root)
    assert any_s3_server.filesystem().get_file_info(root).type == pyarrow.fs.FileType.NotFound
    with run_folder_on(uri) as out:
        assert read_files(out) == {}


def test_an_object_damaged_behind_hfsynths_back_is_named(any_s3_server: S3Server, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "scratch"))
    uri = any_s3_server.uri()
    with run_folder_on(uri) as out:
        write_files(out, {"dataset/dataset_dict.json": '{"splits": ["train"]}', "eval/results.json": "{}"})
    any_s3_server.put(uri, "dataset/dataset_dict.json", b'23\r\n{"splits": ["train"]}\r\n0\r\n')
    name = f"{uri.split('?')[0]}/dataset/dataset_dict.json"
    # The next command, from a fresh scratch folder (another machine, a new pod), names the object and the store.
    line = one_error_line(run_cli("evaluate", "recipes/quickstart.yaml", "--out", uri, timeout=120,
                                  HFSYNTH_SCRATCH=str(tmp_path / "fresh")))
    assert line.startswith(f"error: {name}: the store at 127.0.0.1:{any_s3_server.port} holds 30 bytes")
    assert "hfsynth wrote there" in line


@pytest.mark.parametrize("any_s3_server", ["s3rver"], indirect=True)  # moto understands the framing
def test_what_the_store_did_not_keep_is_named_and_the_folder_not_finished(any_s3_server: S3Server, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With AWS's new checksum framing forced on, s3rver keeps the framing as the object: hfsynth says so at the
    first object, and the file that marks the folder finished is never sent."""
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "WHEN_SUPPORTED")
    uri = any_s3_server.uri()
    write_files(tmp_path / "student", {"hfsynth_student.json": "{}", "model.safetensors": "weights"})
    with pytest.raises(StorageError) as error:
        RunStorage(uri).upload(tmp_path / "student", "students/s")
    assert str(error.value).startswith(f"{uri.split('?')[0]}/students/s/model.safetensors: the store at "
                                       f"127.0.0.1:{any_s3_server.port} holds ")
    assert "where hfsynth sent 7 bytes" in str(error.value) and "not marked finished" in str(error.value)
    assert "students/s/hfsynth_student.json" not in any_s3_server.objects(uri)


def test_storage_that_cannot_be_used_is_one_line_before_anything_runs(any_s3_server: S3Server,
                                                                       tmp_path: Path) -> None:
    """Missing bucket, wrong credentials, nobody answering: one line, exit 1, and nothing else printed (the plan,
    the teacher) before it."""
    cases = {
        any_s3_server.uri(bucket="no-such-bucket"): "the bucket no-such-bucket does not exist on the store at",
        f"s3://bucket/run?endpoint_override=127.0.0.1:{free_port()}&scheme=http&region=us-east-1":
            "nobody answers at the store at 127.0.0.1:",
    }
    for uri, expected in cases.items():
        result = run_cli("generate", "recipes/quickstart.yaml", "--out", uri, timeout=120,
                         HFSYNTH_SCRATCH=str(tmp_path))
        assert expected in one_error_line(result) and result.stdout == "" and result.returncode == 1
    if any_s3_server.name == "s3rver":  # moto takes any credentials
        result = run_cli("generate", "recipes/quickstart.yaml", "--out", any_s3_server.uri(), timeout=120,
                         HFSYNTH_SCRATCH=str(tmp_path), AWS_ACCESS_KEY_ID="nobody", AWS_SECRET_ACCESS_KEY="wrong")
        assert "refused these credentials (AWS_ACCESS_KEY_ID" in one_error_line(result) and result.stdout == ""


def test_asking_a_store_nobody_answers_for_a_file_is_a_storage_error() -> None:
    storage = RunStorage(f"s3://bucket/run?endpoint_override=127.0.0.1:{free_port()}&scheme=http&region=us-east-1")
    with pytest.raises(StorageError, match="nobody answers at the store at 127.0.0.1:"):
        storage.exists("dataset")


def test_a_prefix_the_credentials_cannot_write_and_unknown_keys_are_one_line(guarded_s3: GuardedS3,
                                                                             tmp_path: Path) -> None:
    """On a store that checks permissions: a prefix the keys may not write, and keys the store does not know."""
    readonly = guarded_s3.server.uri(prefix="readonly/run")
    result = run_cli("generate", "recipes/quickstart.yaml", "--out", readonly, timeout=120,
                     HFSYNTH_SCRATCH=str(tmp_path), **guarded_s3.keys)
    line = one_error_line(result)
    assert line.startswith(f"error: --out {readonly.split('?')[0]}: the store at 127.0.0.1:{guarded_s3.server.port} "
                           "refused these credentials") and "PutObject" in line and result.stdout == ""
    unknown = guarded_s3.keys | {"AWS_ACCESS_KEY_ID": "AKIANOBODY", "AWS_SECRET_ACCESS_KEY": "wrong"}
    result = run_cli("generate", "recipes/quickstart.yaml", "--out", guarded_s3.server.uri(prefix="writable/run"),
                     timeout=120, HFSYNTH_SCRATCH=str(tmp_path), **unknown)
    assert "credentials (AWS_ACCESS_KEY_ID" in one_error_line(result) and result.stdout == ""


def test_out_values_that_name_no_storage_hfsynth_knows(tmp_path: Path) -> None:
    assert storage_uri("runs/a") is None and storage_uri("/abs/runs") is None
    # One location, however it is spelled: one scratch copy, one lock.
    assert storage_uri("S3://runs/a/?scheme=http&endpoint_override=h:1") == \
        storage_uri("s3://runs//a?endpoint_override=h:1&scheme=http") == "s3://runs/a?endpoint_override=h:1&scheme=http"
    for out, expected in {"foo://bucket/run1": "hfsynth cannot store a run at foo://",
                          "s3a://bucket/run1": "s3a:// is Hadoop's name for S3; write s3://bucket/run1"}.items():
        line = one_error_line(run_cli("generate", str(REPO_ROOT / "recipes/quickstart.yaml"), "--out", out, timeout=60,
                                      cwd=tmp_path, HFSYNTH_SCRATCH=str(tmp_path / "scratch")))
        assert line == f"error: --out {out}: {expected}" or line.startswith(f"error: --out {out}: {expected}")
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(":")]  # no folder named foo:
    with pytest.raises(HfsynthError, match=r"^--out s3://: name a bucket"), run_folder_on("s3://"):
        pass


def test_one_location_spelled_two_ways_is_one_lock(any_s3_server: S3Server, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path))
    uri = any_s3_server.uri()
    path, query = uri.split("?")
    with run_folder_on(uri):
        line = one_error_line(run_cli("generate", "recipes/quickstart.yaml", "--out", f"{path}/?{query}",
                                      timeout=120, HFSYNTH_SCRATCH=str(tmp_path)))
    assert line.startswith(f"error: --out {path}: the run folder is in use by pid {os.getpid()}")


def test_the_call_cache_goes_up_as_it_grows(any_s3_server: S3Server, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 3 answers (HFSYNTH_CACHE_SYNC_ANSWERS) the cache reaches storage while the command still runs: a
    driver lost now costs at most that window."""
    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "driver"))
    monkeypatch.setenv("HFSYNTH_CACHE_SYNC_ANSWERS", "3")
    uri = any_s3_server.uri()
    with run_folder_on(uri) as out, CallCache(out / "cache" / "teacher_calls.sqlite") as cache:
        for index in range(4):
            cache.put_many({f"key{index}": f"answer {index}"})
        deadline = time.monotonic() + 20
        while "cache/teacher_calls.sqlite" not in any_s3_server.objects(uri) and time.monotonic() < deadline:
            time.sleep(0.2)
        # What another machine would resume from, brought down while this command still holds the run.
        (tmp_path / "other").mkdir()
        monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "other"))
        RunStorage(uri).download("cache", tmp_path / "other" / "cache")
        with CallCache(tmp_path / "other" / "cache" / "teacher_calls.sqlite") as seen:
            assert len(seen) >= 3
        cache.put_many({"key9": "answer 9"})
    with CallCache(_download(RunStorage(uri), tmp_path / "end") / "cache" / "teacher_calls.sqlite") as final:
        assert len(final) == 5  # the end of the block sends it whole


def test_sigterm_sends_what_was_done_up_like_ctrl_c(any_s3_server: S3Server, tmp_path: Path) -> None:
    """Kubernetes stops a pod with SIGTERM: what the command did reaches storage before it exits."""
    uri = any_s3_server.uri()
    script = ("import sys, time\nfrom hfsynth.storage.mirror import run_folder_on\n"
              "with run_folder_on(sys.argv[1]) as out:\n"
              "    (out / 'cache').mkdir()\n    (out / 'cache' / 'done.txt').write_text('paid for')\n"
              "    print('ready', flush=True)\n    time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", script, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=cli_environment(HFSYNTH_SCRATCH=str(tmp_path)))
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=60)
    assert process.returncode != 0 and "hfsynth.stop_signals.Terminated" in errors  # raised as Ctrl-C is
    assert any_s3_server.objects(uri) == {"cache/done.txt": b"paid for"}


def test_the_checksum_settings_are_chosen_and_reach_ray_workers(any_s3_server: S3Server, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from hfsynth.engines.ray_cluster import forwarded_runtime_env

    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path))
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION", raising=False)
    monkeypatch.delenv("AWS_RESPONSE_CHECKSUM_VALIDATION", raising=False)
    with run_folder_on(any_s3_server.uri()):
        forwarded = forwarded_runtime_env()["env_vars"]
    assert forwarded["AWS_REQUEST_CHECKSUM_CALCULATION"] == forwarded["AWS_RESPONSE_CHECKSUM_VALIDATION"] == \
        "WHEN_REQUIRED"


class ScriptedEngine(LocalEngine):
    """The local engine with a scripted teacher that counts the calls paid."""

    def __init__(self) -> None:
        self.teachers: list[ScriptedTeacher] = []

    def load_teacher(self, recipe: Recipe) -> ScriptedTeacher:
        self.teachers.append(ScriptedTeacher())
        return self.teachers[-1]

    @property
    def calls(self) -> int:
        return sum(teacher.stats.calls for teacher in self.teachers)


#: Files of a run folder that differ between two runs of the same recipe: wall times and memory.
DIFFER_BY_RUN = {"run_stats.json"}


@pytest.fixture(scope="module")
def local_generation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    pipeline.generate(make_recipe(), out, engine=ScriptedEngine())
    return out


def cache_rows(path: Path) -> dict[str, str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, response FROM calls").fetchall())


def test_a_run_on_storage_is_the_local_run_and_resumes_elsewhere_paying_nothing(
        any_s3_server: S3Server, local_generation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = any_s3_server.uri()
    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "first"))
    first = ScriptedEngine()
    with run_folder_on(uri) as out:
        pipeline.generate(make_recipe(), out, engine=first)
    # Every object on the store, read past hfsynth, is the local run's file byte for byte (the cache: row for row).
    stored = any_s3_server.objects(uri)
    local = {path.relative_to(local_generation).as_posix(): path.read_bytes() for path in local_generation.rglob("*")
             if path.is_file() and path.name not in {"hfsynth.lock", *DIFFER_BY_RUN}}
    assert set(stored) - DIFFER_BY_RUN == set(local)
    cache = "cache/teacher_calls.sqlite"
    assert {name: data for name, data in stored.items() if name != cache and name not in DIFFER_BY_RUN} == \
        {name: data for name, data in local.items() if name != cache}
    (tmp_path / "stored.sqlite").write_bytes(stored[cache])
    assert cache_rows(tmp_path / "stored.sqlite") == cache_rows(local_generation / cache)

    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "second"))  # another machine, a new pod
    again = ScriptedEngine()
    with run_folder_on(uri) as out:
        pipeline.generate(make_recipe(), out, engine=again)
    assert first.calls > 0 and again.calls == 0  # nothing paid twice
    data = [name for name in local if name.endswith(".arrow")]
    assert data and all(any_s3_server.objects(uri)[name] == local[name] for name in data)


def test_messages_name_the_uri_not_the_local_copy(any_s3_server: S3Server, tmp_path: Path) -> None:
    uri = any_s3_server.uri()
    write_files(tmp_path / "up", {"teacher_calls.sqlite": "not a database"})
    RunStorage(uri).upload(tmp_path / "up", "cache")
    result = run_cli("generate", "recipes/quickstart.yaml", "--out", uri, timeout=120,
                     HFSYNTH_SCRATCH=str(tmp_path / "scratch"))
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert f"\nerror: {uri.split('?')[0]}/cache/teacher_calls.sqlite: the teacher call cache is damaged" in output
    assert str(tmp_path / "scratch") not in output


def test_a_unit_on_a_node_shows_its_student_not_its_scratch_folder(any_s3_server: S3Server, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from hfsynth.storage.mirror import StagedFolders
    from hfsynth.training_progress import StepReporter

    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path))
    with run_folder_on(any_s3_server.uri()) as out:
        folders = StagedFolders(mirror_of(out))
        for run, expected in {out / "students" / "setfit-minilm": "setfit-minilm",
                              out / "student_runs" / "setfit-minilm" / "8-per-label-seed0":
                                  "setfit-minilm/8-per-label-seed0"}.items():
            with folders.staged(run, write=False) as staged:
                assert not staged.is_relative_to(out)
                assert StepReporter._run(SimpleNamespace(output_dir=str(staged / "checkpoints"))) == expected


def test_what_an_outage_kept_from_storage_goes_up_before_storage_wins(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The store goes down before a command's last push: one line naming the store; the next command on this
    machine, the store back, sends the copy up instead of taking storage's older state."""
    from tests.storage_fixtures import serve

    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "scratch"))
    port, data = free_port(), tmp_path / "store"
    data.mkdir()
    down = serve("s3rver", port, data)
    uri = next(down).uri()
    with pytest.raises(StorageError, match=f"the store at 127.0.0.1:{port}"), run_folder_on(uri) as out:
        write_files(out, {"cache/answers.txt": "paid for"})
        down.close()  # the store stops
    back = serve("s3rver", port, data)
    server = next(back)
    try:
        with run_folder_on(uri) as out:
            assert read_files(out) == {"cache/answers.txt": "paid for"}
        assert server.objects(uri) == {"cache/answers.txt": b"paid for"}
    finally:
        back.close()
