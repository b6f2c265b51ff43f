"""The Ray engine on a real three-node Ray cluster on loopback: same dataset and scores as the local engine, faults,
replica URLs, several recipes at once, and the clear errors of a wrong set-up.

The recipe is the quickstart shrunk to seconds: its seven labels with 4 samples each from the embedded SmolLM2
teacher, a SetFit student swept over 2 train sizes x 2 repeats, 14 real test sentences.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hfsynth import pipeline
from hfsynth.cache import CallCache
from hfsynth.cli import app
from hfsynth.dataset import load_synthetic_dataset
from hfsynth.errors import HfsynthError, TeacherError
from hfsynth.generation.stage import generate_samples
from hfsynth.prompting import Prompt
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import load_recipe
from hfsynth.teachers.cached import CachedTeacher
from hfsynth.training import train_students
from hfsynth.training_progress import StepReporter, TrainingStep
from tests.ray_fixtures import (
    ROOT,
    KillSwitch,
    PaidCallLog,
    RayCluster,
    RecordingTeacherFactory,
    StartedCluster,
    kill_on_first_step,
    visible_gpus,
)
from tests.scripted_teacher import FailingMidBatch, ScriptedTeacher

# The cluster and replica fixtures (ray_cluster, two_replicas), the loopback S3 servers (any_s3_server).
pytest_plugins = ["tests.ray_fixtures", "tests.storage_fixtures"]

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: What a results row says about the model's quality (its speed is measured, and differs from run to run).
SCORES = ("model", "role", "kind", "language", "train_size", "seed", "n", "macro_f1", "accuracy", "per_label",
          "confusion_matrix", "unparseable", "train_examples_per_label")


def tiny_quickstart(folder: Path, **execution: Any) -> Path:
    data = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    data["name"] = "ray-quickstart"
    data["teacher"]["batch_size"] = 4
    data["teacher"]["sampling"]["max_new_tokens"] = 40
    data["generation"].update(samples_per_label=4, samples_per_call=2)
    data["generation"]["seeds"][0]["path"] = str(ROOT / "data/sib200/eng_Latn/train.jsonl")
    data["evaluation"]["sets"][0]["path"] = str(ROOT / "data/sib200/eng_Latn/test.jsonl")
    data["evaluation"]["max_samples"] = 14
    del data["evaluation"]["reference"]  # the human-data runs train like the synthetic ones: no Ray case of their own
    data["students"] = [data["students"][0] | {"params": {"num_iterations": 2, "batch_size": 8}, "train_sizes": [1, 2],
                                               "repeats": 2}]  # the SetFit student alone
    # Resources: teacher replicas on the two GPU workers, one CPU per unit.
    data["execution"] = {"teacher": {"replicas": 2, "num_cpus": 1, "num_gpus": 1},
                         "students": {"num_cpus": 1}, "evaluation": {"num_cpus": 1}, **execution}
    path = folder / "ray-quickstart.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def engine(cluster: RayCluster, **options: Any):  # noqa: ANN201 - hfsynth.engines.ray_engine.RayEngine
    from hfsynth.engines.ray_engine import RayEngine

    return RayEngine(cluster.address, **options)


def scores(out: Path) -> list[dict[str, Any]]:
    results = json.loads((out / "eval" / "results.json").read_text())
    return [{key: row.get(key) for key in SCORES} for row in results["rows"]]


def dataset_files(out: Path) -> dict[str, bytes]:
    """Every file of the saved dataset (not the `cache-*.arrow` files `datasets` adds when a student trains on it)."""
    folder = out / "dataset"
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.name.startswith("cache-")}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recipe, Path]:
    """The whole tiny recipe on the local engine (the Ray engine's units then use as many torch threads as it)."""
    folder = tmp_path_factory.mktemp("local")
    recipe = load_recipe(tiny_quickstart(folder))
    pipeline.generate(recipe, folder / "run")
    pipeline.train(recipe, folder / "run")
    pipeline.evaluate(recipe, folder / "run")
    return recipe, folder / "run"


def unit_threads(context: None, item: int) -> tuple[str | None, int]:
    """A unit reporting the OMP_NUM_THREADS Ray gave its worker and the torch thread count it computes with."""
    import os

    import torch

    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def test_ray_units_use_the_pinned_thread_count_not_rays_omp_num_threads(ray_cluster: RayCluster) -> None:
    from hfsynth.engines.base import UnitSpec
    from hfsynth.reproducibility import compute_threads

    with engine(ray_cluster) as ray_engine:
        results = dict(ray_engine.map(unit_threads, [0, 1], None, UnitSpec(stage="threads")))
    # Ray runs a 1-CPU task with OMP_NUM_THREADS=1; the unit still computes with hfsynth's fixed count.
    assert [results[index] for index in (0, 1)] == [("1", compute_threads())] * 2


def test_teacher_replicas_land_on_separate_gpu_nodes(ray_cluster: RayCluster, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_quickstart(tmp_path))
    with engine(ray_cluster, teacher_factory=lambda config: ScriptedTeacher()) as ray_engine, \
            ray_engine.load_teacher(recipe) as teacher:
        nodes = {replica["node_id"] for replica in teacher.replicas}
        assert len(teacher.replicas) == 2 and len(nodes) == 2
        assert all(replica["gpu_ids"] for replica in teacher.replicas)  # each got a GPU of its own node
        worker_nodes = {node.node_id for node in ray_cluster.cluster.worker_nodes}
        assert nodes == worker_nodes  # the head declares no GPU


def test_a_unit_sees_exactly_the_gpus_it_was_given(ray_cluster: RayCluster) -> None:
    from hfsynth.engines.base import UnitSpec
    from hfsynth.recipe.execution import WorkResources

    with engine(ray_cluster) as ray_engine:
        with_gpu = list(ray_engine.map(visible_gpus, range(4), None,
                                       UnitSpec("gpu units", WorkResources(num_cpus=0.5, num_gpus=1))))
        without = list(ray_engine.map(visible_gpus, range(4), None,
                                      UnitSpec("cpu units", WorkResources(num_cpus=0.5, num_gpus=0))))
    for _, (cuda_visible, given) in with_gpu:
        assert len(given) == 1 and cuda_visible == given[0]  # its own GPU, and only it
    assert all(result == ("", []) for _, result in without)  # none at all, not every GPU of the node


def test_same_dataset_and_scores_as_the_local_engine(local_run: tuple[Recipe, Path], ray_cluster: RayCluster,
                                                     tmp_path: Path) -> None:
    recipe, local_out = local_run
    out = tmp_path / "run"
    progress: list[tuple[str, int, int]] = []
    steps: list[TrainingStep] = []
    with engine(ray_cluster) as ray_engine:
        pipeline.generate(recipe, out, engine=ray_engine)
        # Each run's training steps come back to the driver from the workers (the CLI draws them as bars).
        with ray_engine.event_sink(steps.append) as send:
            trained = pipeline.train(recipe, out, engine=ray_engine, callbacks=[StepReporter(send)],
                                     on_progress=lambda done, total: progress.append(("students", done, total)))
        pipeline.evaluate(recipe, out, engine=ray_engine,
                          on_progress=lambda done, total: progress.append(("evaluations", done, total)))

    made, expected = dataset_files(out), dataset_files(local_out)
    assert made.pop("README.md").decode().splitlines() == expected.pop("README.md").decode().splitlines()
    assert made == expected  # byte for byte
    assert len(trained) == 6 and not any(run.skipped for run in trained)
    assert scores(out) == scores(local_out)
    assert ("students", 6, 6) in progress and ("evaluations", 6, 6) in progress
    ended = [step for step in steps if step.ended]
    assert len(ended) == 6 and all(step.step > 0 for step in ended)
    assert {step.run for step in ended} == {
        run.run.directory.name if run.run.is_main else f"{run.run.directory.parent.name}/{run.run.directory.name}"
        for run in trained}
    for name in ("report.md", "teacher_vs_students.png", "learning_curve.png"):
        assert (out / "eval" / name).is_file()
    assert (out / "students" / "setfit-minilm" / "README.md").is_file()
    assert not list(out.rglob(".hfsynth-ray-probe-*"))


def test_head_only_setfit_gets_its_embeddings_from_the_driver_and_scores_as_locally(
        local_run: tuple[Recipe, Path], ray_cluster: RayCluster, tmp_path: Path) -> None:
    """A head-only SetFit sweep: the driver embeds every training and test text once into the run's store and sends
    the units tables; the scores on Ray are the local engine's."""
    _, local_out = local_run
    data = yaml.safe_load(tiny_quickstart(tmp_path).read_text())
    data["students"] = [{"name": "setfit-head", "kind": "setfit", "model": "all-minilm-l6-v2",
                         "params": {"body_training": "none"}, "train_sizes": [2], "repeats": 2}]
    path = tmp_path / "head-only.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    recipe = load_recipe(path)
    outs = {}
    for name in ("local", "ray"):
        out = outs[name] = tmp_path / name
        shutil.copytree(local_out / "dataset", out / "dataset")
        shutil.copytree(local_out / "cache", out / "cache")  # the teacher's answers: its evaluation is cached
        (out / "cache" / "embeddings.sqlite").unlink(missing_ok=True)
    pipeline.train(recipe, outs["local"])
    pipeline.evaluate(recipe, outs["local"])
    with engine(ray_cluster) as ray_engine:
        trained = pipeline.train(recipe, outs["ray"], engine=ray_engine)
        pipeline.evaluate(recipe, outs["ray"], engine=ray_engine)
    assert len(trained) == 4 and scores(outs["ray"]) == scores(outs["local"])
    for out in outs.values():
        stages = json.loads((out / "run_stats.json").read_text())["stages"]
        with sqlite3.connect(out / "cache" / "embeddings.sqlite") as store:
            rows = store.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        # The driver computed every stored vector, the training texts then the test texts, each once.
        assert stages["train"]["embedded_texts"]["computed"] + stages["evaluate"]["embedded_texts"]["computed"] == rows
        assert rows >= len(load_synthetic_dataset(out / "dataset")["train"])


def test_actor_killed_mid_generation(local_run: tuple[Recipe, Path], ray_cluster: RayCluster, tmp_path: Path) -> None:
    recipe, local_out = local_run
    out = tmp_path / "run"
    record = tmp_path / "record"
    switch = KillSwitch(record / "switch")
    watcher = switch.watch()
    # The first unit to start after one unit's answers were delivered: its actor is SIGKILLed mid-unit.
    with engine(ray_cluster, teacher_factory=RecordingTeacherFactory(record, kill_after=1)) as ray_engine:
        pipeline.generate(recipe, out, engine=ray_engine)
        watcher.join(timeout=1)
        assert switch.killed
        made = dataset_files(out)
        # Run again (as after a killed driver): every answer comes from the cache.
        _, again = pipeline.generate(recipe, out, engine=ray_engine)
    assert again.cached_calls == again.calls > 0

    expected = dataset_files(local_out)
    del made["README.md"], expected["README.md"]  # the local run's card also shows its evaluation
    assert made == expected
    paid = PaidCallLog(record).calls()
    assert len(paid) == len(set(paid)), "an answer was paid for twice"
    with CallCache(out / "cache" / "teacher_calls.sqlite") as cache:
        assert len(cache) == len(paid)  # every delivered answer is cached, once
    generated = load_synthetic_dataset(out / "dataset")
    rows = [(row["text"], row["prompt_id"]) for split in generated.values() for row in split]
    local = load_synthetic_dataset(local_out / "dataset")
    assert len(rows) == len(set(rows)) == sum(len(split) for split in local.values())  # no sample lost or duplicated


def test_worker_killed_mid_sweep(local_run: tuple[Recipe, Path], ray_cluster: RayCluster, tmp_path: Path) -> None:
    recipe, local_out = local_run
    out = tmp_path / "run"
    (out / "cache").mkdir(parents=True)
    # Same dataset, same teacher answers: only the students train again, and one of their workers is killed.
    shutil.copyfile(local_out / "cache" / "teacher_calls.sqlite", out / "cache" / "teacher_calls.sqlite")
    switch = KillSwitch(tmp_path / "switch")
    watcher = switch.watch()
    with engine(ray_cluster) as ray_engine:
        trained = train_students(recipe, load_synthetic_dataset(local_out / "dataset"), out,
                                 callbacks=[kill_on_first_step(tmp_path / "switch")], engine=ray_engine)
        pipeline.evaluate(recipe, out, engine=ray_engine)
        watcher.join(timeout=1)
        assert switch.killed
        # Run again (as after a killed driver): every finished run is skipped.
        again = pipeline.train(recipe, out, dataset_source=local_out / "dataset", engine=ray_engine)
    assert len(trained) == 6 and len({run.run.directory for run in trained}) == 6
    assert not any(run.skipped for run in trained) and all(run.skipped for run in again)
    assert scores(out) == scores(local_out)


def unit_folders(cluster: RayCluster) -> set[Path]:
    """The units' scratch folders on the cluster's nodes."""
    return {unit for scratch in cluster.node_scratch if (scratch / "units").is_dir()
            for unit in (scratch / "units").iterdir()}


def test_run_folder_on_object_storage(local_run: tuple[Recipe, Path], ray_cluster: RayCluster, any_s3_server: Any,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--out s3://... on each S3-compatible server (moto, s3rver): every node works in its own scratch folder, a
    whole worker node (raylet, workers and its scratch folder) is lost mid-sweep, and a driver on another machine
    (another scratch folder) evaluates from what reached storage: the local engine's scores."""
    from hfsynth.storage.mirror import RunStorage, run_folder_on

    recipe, local_out = local_run
    uri = any_s3_server.uri()
    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "driver"))
    workers = ray_cluster.worker_node_ids()
    earlier = set(unit_folders(ray_cluster))  # a node lost by an earlier test of the module left its unit's folder
    switch = KillSwitch(tmp_path / "switch", on_nodes=workers)
    watcher = switch.watch(cluster=ray_cluster)
    try:
        with run_folder_on(uri) as out, engine(ray_cluster) as ray_engine:
            # The local run's teacher answers: generation pays nothing, the students and their storage are the point.
            (out / "cache").mkdir(parents=True)
            shutil.copyfile(local_out / "cache" / "teacher_calls.sqlite", out / "cache" / "teacher_calls.sqlite")
            pipeline.generate(recipe, out, engine=ray_engine)
            trained = pipeline.train(recipe, out, engine=ray_engine,
                                     callbacks=[kill_on_first_step(tmp_path / "switch", on_nodes=workers)])
            watcher.join(timeout=1)
            assert switch.killed
    finally:
        ray_cluster.restore_workers()
    lost = switch.node_file.read_text()
    assert lost in workers and lost not in ray_cluster.worker_node_ids()  # the node really went (a fresh one came)
    assert len(trained) == 6 and not any(run.skipped for run in trained)
    assert not list(out.rglob(".hfsynth-ray-probe-*"))  # no shared folder was asked of the nodes
    # The units worked in the nodes' own scratch folders and cleaned up after themselves, all but the lost node's.
    left = [unit for unit in unit_folders(ray_cluster) - earlier if any(path.is_file() for path in unit.rglob("*"))]
    assert any((scratch / "units").is_dir() for scratch in ray_cluster.node_scratch) and len(left) <= 1
    assert RunStorage(uri).exists("students/setfit-minilm/hfsynth_student.json")
    assert not RunStorage(uri).exists("students/setfit-minilm/checkpoints")

    monkeypatch.setenv("HFSYNTH_SCRATCH", str(tmp_path / "another-driver"))
    with run_folder_on(uri) as elsewhere, engine(ray_cluster) as ray_engine:
        assert elsewhere != out
        again = pipeline.train(recipe, elsewhere, engine=ray_engine)
        pipeline.evaluate(recipe, elsewhere, engine=ray_engine)
    assert all(run.skipped for run in again)
    assert scores(elsewhere) == scores(local_out)


def test_ray_job_submit_as_the_readme_says(local_run: tuple[Recipe, Path], started_cluster: StartedCluster,
                                          tmp_path: Path) -> None:
    """`ray start` (head, then a node joining with the token), then `ray job submit` with a runtime_env, as the
    README's steps: the job runs with OMP_NUM_THREADS=1 and without the venv on its PATH, and its scores are the
    local engine's."""
    from hfsynth.embedded import cache_dir

    _, local_out = local_run
    recipe = tiny_quickstart(tmp_path, teacher={"replicas": 1, "num_cpus": 1})  # the cluster declares no GPU
    out = tmp_path / "run"
    runtime_env = {"env_vars": {"HF_HUB_OFFLINE": "1", "HFSYNTH_CACHE": str(cache_dir())}}
    submitted = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", started_cluster.dashboard,
         "--runtime-env-json", json.dumps(runtime_env), "--",
         str(Path(sys.executable).parent / "hfsynth"), "run", str(recipe), "--out", str(out), "--ray"],
        env=os.environ | started_cluster.client_env, capture_output=True, text=True, timeout=1500, check=False)
    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0 and "succeeded" in output, output[-3000:]
    assert "running on the Ray cluster at" in output
    assert scores(out) == scores(local_out)


def test_student_folder_not_shared_with_the_driver_is_an_error(local_run: tuple[Recipe, Path],
                                                               ray_cluster: RayCluster, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from hfsynth.engines import ray_engine as module

    recipe, local_out = local_run
    # As a node that mounts another disk at that path would: the probe the driver wrote is not there.
    monkeypatch.setattr(module.SharedFolderProbe, "create", classmethod(
        lambda cls, folder: cls(str(folder / ".hfsynth-ray-probe-elsewhere"), "x", "driver-host")))
    with engine(ray_cluster) as ray_engine, pytest.raises(HfsynthError, match="storage shared by the driver"):
        train_students(recipe, load_synthetic_dataset(local_out / "dataset"), tmp_path / "run", engine=ray_engine)
    assert not list((tmp_path / "run").rglob("hfsynth_student.json"))


def failing_teacher(config: object) -> None:
    raise TeacherError("cannot load teacher model 'nope': no such model")


def test_answers_a_replica_got_before_a_failure_reach_the_cache(ray_cluster: RayCluster, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_quickstart(tmp_path, teacher={"replicas": 1, "num_cpus": 1}))  # one unit at a time
    prompts = [Prompt((("user", f"prompt {index}"),), f"prompt {index}") for index in range(5)]
    with engine(ray_cluster, teacher_factory=lambda config: FailingMidBatch(answered=3)) as ray_engine, \
            ray_engine.load_teacher(recipe) as teacher, CallCache(tmp_path / "cache.sqlite") as cache:
        with pytest.raises(TeacherError, match="failed for good"):
            CachedTeacher(teacher, cache).generate(prompts, [str(index) for index in range(5)], recipe.teacher.sampling)
        assert len(cache) == 3  # paid for on the worker, stored by the driver before the error reached it


def test_a_teacher_that_cannot_load_is_its_own_error(ray_cluster: RayCluster, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_quickstart(tmp_path))
    with engine(ray_cluster, teacher_factory=failing_teacher) as ray_engine, \
            pytest.raises(TeacherError, match="^cannot load teacher model 'nope': no such model$"):
        ray_engine.load_teacher(recipe)


def test_resources_no_node_has_fail_at_once(ray_cluster: RayCluster, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_quickstart(tmp_path, teacher={"num_gpus": 2}))
    started = time.monotonic()
    with engine(ray_cluster) as ray_engine, pytest.raises(HfsynthError, match=r"no node .* GPU=2 .*execution.teacher"):
        ray_engine.load_teacher(recipe)
    assert time.monotonic() - started < 30


def test_two_recipes_at_once_through_the_cli(ray_cluster: RayCluster, tmp_path: Path) -> None:
    paths = []
    for name, seed in (("ray-a", 0), ("ray-b", 1)):
        data = yaml.safe_load(tiny_quickstart(tmp_path).read_text())
        data["name"] = name
        data["generation"].update(samples_per_label=2, samples_per_call=2, seed=seed)
        data["students"][0].update(train_sizes=[], repeats=1)
        data["execution"]["teacher"] = {"replicas": 1, "num_cpus": 1, "resources": {"worker": 1}}
        data["evaluation"]["max_samples"] = 7
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        paths.append(str(path))
    result = CliRunner().invoke(app, ["run", *paths, "--out", str(tmp_path / "runs"), "--ray", ray_cluster.address],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("ray-a", "ray-b"):
        results = json.loads((tmp_path / "runs" / name / "eval" / "results.json").read_text())
        assert {row["role"] for row in results["rows"]} == {"teacher", "student"}
        assert f"{name}: students 1/1 done" in result.output


def test_replica_urls_one_killed_midway(two_replicas: tuple, ray_cluster: RayCluster, tmp_path: Path) -> None:
    first, second, hub_id = two_replicas
    data = yaml.safe_load(tiny_quickstart(tmp_path).read_text())
    data["teacher"] = {"backend": "remote", "model": hub_id, "base_url": [first.base_url, second.base_url],
                       "max_concurrency": 2, "max_retries": 1, "timeout": 120,
                       "sampling": {"max_new_tokens": 24, "temperature": 0.8}}
    data["labels"], left_out = data["labels"][:3], data["labels"][3:]
    # Generation reads the test set too (its texts must not leak into the dataset): the other labels' rows left out.
    data["evaluation"]["sets"][0]["label_map"] = {label["name"]: None for label in left_out}
    # Zero-shot (the few-shot seed file holds all seven labels): 12 calls, in units of 8 and 4.
    data["generation"].update(strategy="zero-shot", seeds=[], samples_per_label=8, samples_per_call=2)
    data["execution"]["teacher"] = {"replicas": 1, "num_cpus": 1}
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    recipe = load_recipe(path)
    cache_path = tmp_path / "cache.sqlite"

    def kill_first_after_one_unit() -> None:
        # Midway: once the first replica has answered (every answer is cached as it arrives, so the cache's first
        # answer may be the second replica's) and the run has answers stored.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if cache_path.is_file() and first.requests_served() > 0:
                with CallCache(cache_path) as cache:
                    if len(cache):
                        first.process.kill()
                        return
            time.sleep(0.2)

    import threading

    killer = threading.Thread(target=kill_first_after_one_unit, daemon=True)
    killer.start()
    with engine(ray_cluster) as ray_engine:
        with ray_engine.load_teacher(recipe) as teacher:
            result = generate_samples(recipe, teacher, cache_path)
    killer.join(timeout=1)
    assert first.process.poll() is not None, "the first replica was not killed"
    assert result.calls >= 12 and len(result.samples) > 0
    with CallCache(cache_path) as cache:
        assert len(cache) == result.calls  # every call answered, once
    assert first.requests_served() > 0 and second.requests_served() > 0
    assert any(first.base_url in failure for failure in teacher.stats.failures)


def test_ray_without_the_extra_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [module for module in sys.modules if module == "ray" or module.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    monkeypatch.delitem(sys.modules, "hfsynth.engines.ray_engine", raising=False)
    recipe = tiny_quickstart(tmp_path)
    result = CliRunner().invoke(app, ["generate", str(recipe), "--out", str(tmp_path / "run"), "--ray"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == ["error: the Ray engine needs Ray, which is not installed: pip install 'hfsynth[ray]'"]
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_ray_flag_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hfsynth import cli
    from hfsynth.engines import base as execution

    seen: list[str | None] = []

    def fake_engine_for(recipes: Any, ray_flag: str | None) -> execution.Engine:
        seen.append(ray_flag)
        raise HfsynthError("stop here")

    monkeypatch.setattr(pipeline, "engine_for", fake_engine_for)
    recipe = str(tiny_quickstart(tmp_path))
    for args in (["--ray"], ["--ray", "auto"], ["--ray", "--out", str(tmp_path)], []):
        out = [] if "--out" in args else ["--out", str(tmp_path)]
        CliRunner().invoke(cli.app, ["train", recipe, *out, *args])
    assert seen == ["", "auto", "", None]
    result = CliRunner().invoke(cli.app, ["run", recipe, "--ray", recipe, "--out", str(tmp_path)])
    assert "put --ray after the recipes" in result.output


def test_execution_section_is_validated(tmp_path: Path) -> None:
    data = yaml.safe_load(tiny_quickstart(tmp_path).read_text())
    data["execution"] = {"engine": "local", "address": "auto"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(HfsynthError, match="address is only for engine: ray"):
        load_recipe(tmp_path / "bad.yaml")
    data["execution"] = {"teacher": {"replicas": 0}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(HfsynthError, match="execution.teacher.replicas"):
        load_recipe(tmp_path / "bad.yaml")


def test_an_address_where_nothing_listens_fails_at_once(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        started = time.monotonic()
        result = CliRunner().invoke(app, ["generate", str(tiny_quickstart(tmp_path)), "--out", str(tmp_path / "run"),
                                          "--ray", address])
    assert time.monotonic() - started < 30
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1 and f"cannot connect to the Ray cluster at {address}" in errors[0]


def test_feedback_rounds_write_the_same_data_as_on_the_local_engine(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """Error-driven generation through the engine interface: the teacher a pool of Ray actors, the steering student
    in the driver; the same prompts, answers and rounds as on the local engine."""
    from tests.test_feedback import MajorityStudent
    from tests.test_feedback import recipe as feedback_recipe

    recipe = feedback_recipe(tmp_path, signal="both")
    local = generate_samples(recipe, ScriptedTeacher(), tmp_path / "local.sqlite", steerer=MajorityStudent())
    with engine(ray_cluster, teacher_factory=lambda config: ScriptedTeacher()) as ray_engine, \
            ray_engine.load_teacher(recipe) as teacher:
        on_ray = generate_samples(recipe, teacher, tmp_path / "ray.sqlite", steerer=MajorityStudent())
    assert on_ray.feedback is not None and on_ray.feedback == local.feedback
    assert on_ray.samples == local.samples and on_ray.asked == local.asked
