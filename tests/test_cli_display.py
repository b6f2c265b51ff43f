"""Readable at any width: piped (not a terminal) and at 80 columns, every number of an 11-language run is shown, and
progress comes as plain lines at milestones instead of bars."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import threading
import time
from pathlib import Path

import yaml
from rich.console import Console

from hfsynth.cli import display as cli_display
from hfsynth.evaluation.results import EvaluationResults
from hfsynth.generation.samples import GenerationResult, Sample
from hfsynth.model_shapes import CONFIG_TIMEOUT
from hfsynth.recipes.files import load_recipe
from tests.cli_helpers import REPO_ROOT, run_cli
from tests.run_helpers import STUDENT, TEACHER_ID, _entry, fake_run

#: The paper's 11 languages (pecher2026-topic).
LANGUAGES = ["az", "cy", "de", "en", "he", "id", "ro", "sl", "sw", "te", "th"]


def eleven_language_results(recipe_name: str) -> EvaluationResults:
    summary = []
    for index, language in enumerate(LANGUAGES):
        teacher = _entry("teacher", TEACHER_ID, "zero-shot", language, 0.301 + index / 100) | {
            "macro_f1_ci": [0.201 + index / 100, 0.401 + index / 100]}
        student = _entry("student", STUDENT, "setfit", language, 0.612 + index / 100) | {
            "macro_f1_ci": [0.512 + index / 100, 0.712 + index / 100], "repeats": 3, "macro_f1_std": 0.023}
        summary += [teacher, student]
    return EvaluationResults.model_validate({
        "recipe": recipe_name, "labels": ["a", "b", "c"], "languages": LANGUAGES,
        "teacher": {"model": TEACHER_ID, "mode": "zero-shot", "demonstrations_per_label": 0},
        "rows": [], "summary": summary, "learning_curve": summary})


def test_results_piped_at_80_columns_show_every_number_of_11_languages(tmp_path: Path) -> None:
    recipe, run = fake_run(tmp_path)
    results = eleven_language_results(recipe.name)
    results.save(run.eval.results)
    shown = run_cli("results", "--out", str(run.root), COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    assert "…" not in shown.stderr and max(map(len, shown.stderr.splitlines())) <= 80
    for entry in results.headline:
        assert entry.score_text("macro_f1") in shown.stderr  # "0.622 ± 0.023 [0.522, 0.722]", whole
    table = [line for line in shown.stderr.splitlines() if line.startswith("│")]
    assert sum(line.split("│")[1].strip() in LANGUAGES for line in table) == 2 * len(LANGUAGES)

    as_json = run_cli("results", "--out", str(run.root), "--json")
    rows = json.loads(as_json.stdout)["rows"]
    assert [(row["language"], row["role"], row["macro_f1"]) for row in rows] == [
        (entry.language, entry.role, entry.macro_f1) for entry in results.headline]


def test_plan_piped_at_80_columns_has_whole_names_a_total_row_and_json() -> None:
    recipes = [str(REPO_ROOT / "recipes" / f"pecher2026-{task}.yaml") for task in ("topic", "sentiment", "intent")]
    shown = run_cli("plan", *recipes, timeout=300, HF_HUB_OFFLINE="1", COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line.split()[1:] for line in shown.stderr.splitlines()
            if re.match(r"(pecher2026-\S+|total) +[\d,]+ ", line)}
    assert set(rows) == {"pecher2026-topic", "pecher2026-sentiment", "pecher2026-intent", "total"}
    assert "…" not in shown.stderr and max(map(len, shown.stderr.splitlines())) <= 80

    as_json = json.loads(run_cli("plan", *recipes, "--json", timeout=300, HF_HUB_OFFLINE="1").stdout)
    plans, total = as_json["recipes"], as_json["total"]
    assert total["student_runs"] == sum(plan["student_runs"] for plan in plans) > 0
    assert rows["total"][3] == f"{total['student_runs']:,}"  # the printed total row is the JSON's
    # In-context students train nothing: their runs cost evaluation minutes only.
    topic = plans[0]
    in_context = sum(s["runs"] for s in topic["students"] if s["kind"] == "in-context")
    assert in_context > 0 and topic["trained_runs"] == topic["student_runs"] - in_context
    assert topic["gpu_hours"] == (topic["trained_runs"] * 30 + topic["student_runs"] * 2) / 60


def test_progress_off_a_terminal_is_plain_lines_at_milestones() -> None:
    with cli_display.console.capture() as captured:
        progress = cli_display.RunDisplay._generation_lines()
        progress.on_calls_planned(200, 0)
        for _ in range(40):
            progress.on_batch_done(5, 10)
        progress.on_calls_planned(10, 0)  # a top-up round: its own milestones
        for _ in range(10):
            progress.on_batch_done(1, 1)
    lines = [line.split(" (")[0] for line in captured.get().splitlines()]
    assert lines == [f"teacher calls: {done}/200" for done in (5, *range(20, 201, 20))] + [
        f"teacher calls: {done}/10" for done in range(1, 11)]
    assert "teacher calls: 200/200 (100%), 400 samples parsed" in captured.get()


def _hold_connections(server: socket.socket) -> None:
    held = []
    with contextlib.suppress(OSError):  # the server closed: the test is over
        while True:
            held.append(server.accept()[0])


def test_plan_gives_up_on_configs_that_do_not_arrive_and_says_so() -> None:
    # A Hub that accepts connections and never answers: what a machine without a network looks like to the client.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        threading.Thread(target=_hold_connections, args=(silent,), daemon=True).start()
        started = time.monotonic()
        shown = run_cli("plan", str(REPO_ROOT / "recipes" / "pecher2026-topic.yaml"), "--json", timeout=300,
                        HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}",
                        HF_HUB_ETAG_TIMEOUT="600", HF_HUB_DOWNLOAD_TIMEOUT="600")
        seconds = time.monotonic() - started
    assert shown.returncode == 0, shown.stderr
    plan = json.loads(shown.stdout)["recipes"][0]
    trained = {student["model"] for student in plan["students"] if student["kind"] != "in-context"}
    assert set(plan["unreached_configs"]) == trained and plan["storage_bytes"] is None
    assert seconds < CONFIG_TIMEOUT + 60  # once, for all models at once: not minutes per model


def test_samples_kept_of_11_languages_fit_80_columns() -> None:
    recipe = load_recipe(REPO_ROOT / "recipes" / "pecher2026-topic.yaml")
    samples = [Sample(f"text {index}", label, language, "p") for language in recipe.languages
               for index, label in enumerate(recipe.label_names * 200)]  # 200 per cell: three digits
    narrow = Console(width=80, file=io.StringIO())
    narrow.print(cli_display.kept_table(recipe, GenerationResult(samples, [], "few-shot", "t")))
    lines = narrow.file.getvalue().splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in narrow.file.getvalue()
    rows = [line.split() for line in lines if line.split()[:1] and line.split()[0] in recipe.label_names]
    assert len(rows) == 7 and all(row[1:] == ["200"] * 11 for row in rows)


def test_plan_shows_teacher_tokens_and_cost_per_recipe_and_in_total() -> None:
    recipes = [str(REPO_ROOT / "recipes" / f"pecher2026-{task}.yaml") for task in ("topic", "sentiment", "intent")]
    prices = ("--input-per-million", "0.6", "--output-per-million", "0.8", "--currency", "EUR")
    shown = run_cli("plan", *recipes, *prices, timeout=300, HF_HUB_OFFLINE="1", COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    costs = {line.split()[0]: line.split()[-2] for line in shown.stderr.splitlines()
             if re.match(r"(pecher2026-\S+|total) +~[\d,]+ .* EUR$", line)}
    assert set(costs) == {"pecher2026-topic", "pecher2026-sentiment", "pecher2026-intent", "total"}
    assert max(map(len, shown.stderr.splitlines())) <= 80

    as_json = json.loads(run_cli("plan", *recipes, *prices, "--json", timeout=300, HF_HUB_OFFLINE="1").stdout)
    teachers = {plan["recipe"]: plan["teacher"] for plan in as_json["recipes"]}
    for name, teacher in teachers.items():
        # Seed and test sets on the Hub are not fetched: generation estimated, evaluation unknown.
        assert teacher["estimated"] and teacher["evaluation_tokens"] is None
        assert teacher["generation_tokens_max"] > teacher["generation_tokens"] > 0
        assert teacher["currency"] == "EUR" and costs[name] == f"{teacher['cost_max']:,.2f}"
    assert costs["total"] == f"{sum(teacher['cost_max'] for teacher in teachers.values()):,.2f}"


def test_plan_warns_when_the_teacher_may_pass_its_budget(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO_ROOT / "recipes" / "quickstart.yaml").read_text())
    data["teacher"]["budget"] = {"max_tokens": 1000}
    (tmp_path / "data").symlink_to(REPO_ROOT / "data")  # the recipe's ../data/... paths
    recipe = tmp_path / "recipes" / "capped.yaml"
    recipe.parent.mkdir()
    recipe.write_text(yaml.safe_dump(data))
    shown = run_cli("plan", str(recipe), timeout=300, HF_HUB_OFFLINE="1", COLUMNS="200")
    assert shown.returncode == 0, shown.stderr
    teacher = json.loads(run_cli("plan", str(recipe), "--json", timeout=300, HF_HUB_OFFLINE="1").stdout)[
        "recipes"][0]["teacher"]
    assert teacher["evaluation_tokens"] > 0 and teacher["tokens_max"] > 1000  # local test sets: counted
    assert (f"warning: {data['name']}: the plan may pass teacher.budget: at most {teacher['tokens_max']:,} tokens, "
            "above teacher.budget.max_tokens 1,000") in shown.stderr
