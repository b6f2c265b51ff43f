"""The comparison Space (hfsynth.space, entry files in spaces/compare/): called through gradio_client against the app
served by ``hfsynth.space.commands.serve`` in this process, on a real run (the embedded SmolLM2 teacher, a SetFit student trained on
real SIB-200 sentences, and a student that was never trained), and deployed to the loopback Hub.

The deploy test needs the tests.hub_fixtures plugin registered in tests/conftest.py.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hfsynth.runs.folder import RunFolder, SpaceFolder
from tests.space_fixtures import TRAINED_STUDENT, UNTRAINED_STUDENT, SpaceRun

REPO_ROOT = Path(__file__).resolve().parent.parent
SPACE_TEMPLATE = REPO_ROOT / "spaces" / "compare"


def _client(url: str):  # noqa: ANN202 - gradio_client.Client, imported late (it is slow to import)
    from gradio_client import Client

    return Client(url, verbose=False)


def _rows(table: dict) -> list[dict]:
    return [dict(zip(table["headers"], row)) for row in table["data"]]


def _manifest(space_run: SpaceRun):  # noqa: ANN202 - hfsynth.space.manifest.SpaceManifest
    from hfsynth.space.manifest import load_manifest

    return load_manifest(RunFolder(space_run.run_dir).space.manifest)


# --- without a run ---------------------------------------------------------------------------------------------------


def test_a_staged_space_is_a_gradio_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run that has only its recipe (no student trained, nothing evaluated) stages a complete Space folder.
    from huggingface_hub import SpaceCard

    from hfsynth.space.staging import recipe_from_run, stage_space

    run = RunFolder(tmp_path / "run")
    run.dataset.root.mkdir(parents=True)
    run.dataset.recipe.write_text((REPO_ROOT / "recipes" / "quickstart.yaml").read_text(encoding="utf-8"))
    monkeypatch.chdir(REPO_ROOT)
    stage_space(recipe_from_run(run.root), run.root, run.space.root, for_hub=False)
    card = SpaceCard.load(run.space.card)
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert (run.space.root / card.data.app_file).is_file() and run.space.requirements.is_file()
    assert card.data.models and card.data.datasets and len(card.data.short_description) <= 60


def test_manifest_needs_one_source_per_student() -> None:
    from pydantic import ValidationError

    from hfsynth.space.manifest import StudentSource

    with pytest.raises(ValidationError, match="exactly one of path or hub_id"):
        StudentSource(name="s", kind="setfit")
    with pytest.raises(ValidationError, match="teacher's column"):
        StudentSource(name="teacher", kind="setfit", path="students/teacher")


def test_recipe_from_run_resolves_data_paths_written_relative_to_the_recipes_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hfsynth.errors import HfsynthError
    from hfsynth.space.staging import recipe_from_run

    quickstart = (SPACE_TEMPLATE.parent.parent / "recipes" / "quickstart.yaml").read_text(encoding="utf-8")
    (tmp_path / "run" / "dataset").mkdir(parents=True)
    (tmp_path / "run" / "dataset" / "recipe.yaml").write_text(quickstart, encoding="utf-8")
    monkeypatch.chdir(SPACE_TEMPLATE.parent.parent)  # where `hfsynth run recipes/quickstart.yaml` is run from
    recipe = recipe_from_run(tmp_path / "run")
    assert Path(recipe.evaluation.sets[0].path).is_file() and recipe.source_text == quickstart
    with pytest.raises(HfsynthError, match="not a run folder"):
        recipe_from_run(tmp_path)


# --- the served app --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_model_predicts_real_test_sentences(space_run: SpaceRun, served_space: str) -> None:
    """Each column holds that model's own prediction: the same as the model gives when called directly."""
    from hfsynth.prompting import classification_prompt
    from hfsynth.students.base import Student
    from hfsynth.teachers import load_teacher

    recipe = space_run.recipe
    examples = _manifest(space_run).examples[:2]
    assert examples and {example.label for example in examples} <= set(recipe.label_names)
    client = _client(served_space)
    student = Student.load(space_run.run_dir / "students" / TRAINED_STUDENT)
    with load_teacher(recipe.teacher) as teacher:
        # One prompt per call, as the app sends them: batched prompts are left-padded, which moves the teacher's
        # probabilities by a percent or two, enough to swap two close labels.
        expected_teacher = [teacher.classify([classification_prompt(recipe, e.text, e.language)], recipe.label_names)[0]
                            for e in examples]
    expected_student = student.predict_proba([e.text for e in examples], [e.language for e in examples])

    for example, teacher_scores, student_row in zip(examples, expected_teacher, expected_student):
        *model_outputs, summary, notice = client.predict(example.text, example.language, api_name="/classify")
        assert notice == ""
        rows = {row["model"]: row for row in _rows(summary)}
        assert list(rows) == ["teacher", TRAINED_STUDENT, UNTRAINED_STUDENT]
        labels, statuses = model_outputs[0::2], model_outputs[1::2]

        teacher_row, student_row_out = rows["teacher"], rows[TRAINED_STUDENT]
        assert teacher_row["label"] == teacher_scores.label and teacher_row["error"] == ""
        teacher_confidences = {c["label"]: c["confidence"] for c in labels[0]["value"]["confidences"]}
        assert teacher_confidences == pytest.approx(teacher_scores.probabilities, abs=1e-3)

        student_label = recipe.label_names[int(np.argmax(student_row))]
        assert student_row_out["label"] == student_label and student_row_out["error"] == ""
        student_confidences = {c["label"]: c["confidence"] for c in labels[1]["value"]["confidences"]}
        assert student_confidences == pytest.approx(dict(zip(recipe.label_names, student_row.tolist())), abs=1e-4)
        assert sum(student_confidences.values()) == pytest.approx(1.0, abs=1e-3)
        for row, confidences in ((teacher_row, teacher_confidences), (student_row_out, student_confidences)):
            assert row["latency_ms"] > 0 and row["confidence"] == pytest.approx(max(confidences.values()), abs=1e-3)

        # Agreement with the teacher is in the table, the status line and the label's colour.
        agrees = student_label == teacher_scores.label
        assert student_row_out["agrees_with_teacher"] == ("yes" if agrees else "no")
        assert ("agrees with the teacher" if agrees else "**disagrees** with the teacher") in statuses[1]
        assert labels[1]["color"] == ("#bbf7d0" if agrees else "#fecaca")

        # The student that was never trained shows why in its own column; the others were unaffected.
        broken = rows[UNTRAINED_STUDENT]
        assert broken["label"] is None and "hfsynth_student.json is missing" in broken["error"]
        assert statuses[2].startswith("**Error**: could not load") and labels[2]["value"] == {}


@pytest.mark.slow
def test_bad_input(served_space: str) -> None:
    from gradio_client.exceptions import AppError

    client = _client(served_space)
    for empty in ("", "   \n "):
        with pytest.raises(AppError, match="Type a text"):
            client.predict(empty, "en", api_name="/classify")
    with pytest.raises(AppError, match="This Space covers en, not 'xx'"):
        client.predict("A sentence about football.", "xx", api_name="/classify")

    long_text = "The national team won the football match in the last minute. " * 100
    *_, summary, notice = client.predict(long_text, "en", api_name="/classify")
    assert f"{len(long_text.strip()):,} characters" in notice and "first 2,000" in notice
    rows = _rows(summary)
    assert all(row["label"] for row in rows if row["model"] != UNTRAINED_STUDENT)


@pytest.mark.slow
def test_batch_of_lines_and_a_csv_file(space_run: SpaceRun, served_space: str, tmp_path: Path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    examples = _manifest(space_run).examples[:2]
    csv_path = tmp_path / "texts.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "language", "label"])
        writer.writerows([[e.text, e.language, e.label] for e in examples])
        writer.writerow(["Ein Satz in einer Sprache, die der Space nicht kennt.", "de", "travel"])
    client = _client(served_space)
    table, download, notice = client.predict("The minister resigned after the election.", handle_file(str(csv_path)),
                                             "en", api_name="/classify_batch")
    rows = _rows(table)
    assert [row["text"] for row in rows] == ["The minister resigned after the election.", *(e.text for e in examples)]
    assert [row["gold"] for row in rows] == ["", *(e.label for e in examples)]
    labels = set(space_run.recipe.label_names)
    for row in rows:
        assert row["teacher"] in labels and row[TRAINED_STUDENT] in labels
        assert 0 < row[f"{TRAINED_STUDENT} confidence"] <= 1 and row[UNTRAINED_STUDENT] is None
    assert "'de' (1)" in notice and f"`{UNTRAINED_STUDENT}`: could not load" in notice
    assert "accuracy" in notice and "on the 2 row(s) with a gold label" in notice
    with open(download, encoding="utf-8", newline="") as handle:
        downloaded = list(csv.DictReader(handle))
    assert [row["teacher"] for row in downloaded] == [row["teacher"] for row in rows]

    with pytest.raises(AppError, match="one text per line"):
        client.predict("  \n", None, "en", api_name="/classify_batch")
    no_text_column = tmp_path / "sentences.csv"
    no_text_column.write_text("sentence,label\nA match.,sports\n", encoding="utf-8")
    with pytest.raises(AppError, match="needs a 'text' column \\(it has: sentence, label\\)"):
        client.predict("", handle_file(str(no_text_column)), "en", api_name="/classify_batch")


@pytest.mark.slow
def test_evaluation_tab(space_run: SpaceRun, served_space: str, tmp_path: Path) -> None:
    from PIL import Image

    results = json.loads((space_run.run_dir / "eval" / "results.json").read_text(encoding="utf-8"))
    teacher, student = results["summary"]
    table, summary, *plots = _client(served_space).predict(api_name="/results")
    rows = _rows(table)
    assert [(row["model"], row["role"], row["language"]) for row in rows] == [
        (teacher["model"], "teacher", "en"), (TRAINED_STUDENT, "student", "en")]
    for row, expected in zip(rows, (teacher, student)):
        assert row["macro_f1"] == pytest.approx(expected["macro_f1"], abs=1e-4) and row["n"] == expected["n"]
    # The verdict of the paired bootstrap, as results.json has it, with the interval of each score.
    assert f"`{TRAINED_STUDENT}` (macro-F1 {student['macro_f1']:.3f} [" in summary
    assert f"**{student['vs_teacher']['statement']}**" in summary and rows[0]["completion_rate"] == 1.0
    assert rows[1]["vs_teacher"] == student["vs_teacher"]["statement"] and rows[1]["macro_f1_ci"].startswith("[")
    assert len(plots) == 2 and all(Image.open(plot).size[0] > 100 for plot in plots)

    # A run that was not evaluated yet: the tab says so instead of failing.
    from hfsynth.space.app import CompareApp

    space = RunFolder(space_run.run_dir).space
    manifest = json.loads(space.manifest.read_text(encoding="utf-8"))
    manifest.update(results=None, plots=[])
    elsewhere = SpaceFolder(tmp_path)
    elsewhere.manifest.write_text(json.dumps(manifest), encoding="utf-8")
    empty_table, message = CompareApp(elsewhere.manifest).results()
    assert empty_table.empty and "no evaluation results" in message


# --- deploy ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_deploy_to_the_local_hub(space_run: SpaceRun, hub_server, hub_api, hub_users, hub_repo_id: str,  # noqa: ANN001
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import SpaceCard, snapshot_download

    from hfsynth.space.app import CompareApp, ModelPool
    from hfsynth.space.commands import deploy
    from hfsynth.space.manifest import load_manifest

    monkeypatch.setenv("HF_TOKEN", hub_users.alice.token)
    trained_only = [student for student in space_run.recipe.students if student.name == TRAINED_STUDENT]
    recipe = space_run.recipe.model_copy(update={"students": trained_only})

    # The student is not on the Hub yet: its folder travels inside the Space.
    url = deploy(recipe, space_run.run_dir, repo_id=hub_repo_id)
    assert hub_repo_id in url and hub_api.space_info(hub_repo_id).sdk == "gradio"
    local = Path(snapshot_download(hub_repo_id, repo_type="space", token=hub_users.alice.token))
    for name in ("app.py", "requirements.txt"):
        assert (local / name).read_bytes() == (SPACE_TEMPLATE / name).read_bytes()
    manifest = load_manifest(SpaceFolder(local).manifest)
    assert manifest.recipe["teacher"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert [(s.name, s.path, s.hub_id) for s in manifest.students] == [
        (TRAINED_STUDENT, f"students/{TRAINED_STUDENT}", None)]
    student_files = {p.name for p in (space_run.run_dir / "students" / TRAINED_STUDENT).iterdir() if p.is_file()}
    assert student_files <= {p.name for p in (local / "students" / TRAINED_STUDENT).iterdir()}
    assert manifest.results == "eval/results.json"
    assert manifest.plots == ["eval/teacher_vs_students.png", "eval/learning_curve.png"]
    for name in ("results.json", "teacher_vs_students.png", "learning_curve.png"):
        assert (local / "eval" / name).read_bytes() == (space_run.run_dir / "eval" / name).read_bytes()
    assert len(manifest.examples) == 5 and (local / "recipe.yaml").read_text() == recipe.source_text
    card = SpaceCard.load(local / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in card.data.models
    assert card.data.datasets == ["hfsynth-org/space-test-synthetic"]

    # Once the student is published under its recipe repo id, the Space names it instead of carrying a copy,
    # and the app downloads it from there.
    student_repo = "hfsynth-org/space-test-setfit"
    hub_api.create_repo(student_repo)
    hub_api.upload_folder(repo_id=student_repo, folder_path=space_run.run_dir / "students" / TRAINED_STUDENT)
    deploy(recipe, space_run.run_dir, repo_id=hub_repo_id)
    shutil.rmtree(local)
    local = Path(snapshot_download(hub_repo_id, repo_type="space", token=hub_users.alice.token))
    manifest = load_manifest(SpaceFolder(local).manifest)
    assert [(s.name, s.path, s.hub_id) for s in manifest.students] == [(TRAINED_STUDENT, None, student_repo)]
    assert not (local / "students").exists() and student_repo in SpaceCard.load(local / "README.md").data.models
    app = CompareApp(SpaceFolder(local).manifest)
    [outcome] = ModelPool(app.recipe, app.specs[1:]).predict([manifest.examples[0].text], ["en"])
    assert outcome.error is None and outcome.label(0) in recipe.label_names


@pytest.mark.slow
def test_deploy_after_publish_links_the_published_student(space_run: SpaceRun, hub_server, hub_api,  # noqa: ANN001
                                                          hub_users, hub_repo_id: str,  # noqa: ANN001
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A student without a repo_id in its recipe is published under the default id; deploy must find it there
    # (one repo-id rule for both) instead of copying its weights into the Space.
    from huggingface_hub import SpaceCard, snapshot_download

    from hfsynth.pipeline import publish_student
    from hfsynth.repo_ids import student_repo_id
    from hfsynth.space.commands import deploy

    monkeypatch.setenv("HF_TOKEN", hub_users.alice.token)
    [trained] = [student for student in space_run.recipe.students if student.name == TRAINED_STUDENT]
    unnamed = trained.model_copy(update={"repo_id": None})
    recipe = space_run.recipe.model_copy(update={"students": [unnamed]})
    expected = student_repo_id(recipe, unnamed)
    assert expected == f"hfsynth-org/space-test-{TRAINED_STUDENT}"

    assert expected in publish_student(recipe, space_run.run_dir, unnamed)
    deploy(recipe, space_run.run_dir, repo_id=hub_repo_id)
    local = Path(snapshot_download(hub_repo_id, repo_type="space", token=hub_users.alice.token))
    assert expected in SpaceCard.load(SpaceFolder(local).card).data.models
    assert not (local / "students").exists()
