"""What the teacher costs: tokens on every call (the server's ``usage``), summed per stage with their price, shown as
cached on a re-run; and ``teacher.budget``, which stops a run before the cap and lets a re-run with a higher cap
finish without paying any call twice. Against a real OpenAI-compatible server on loopback (:mod:`tests.openai_server`),
through the real ``hfsynth`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hfsynth.cache import CallCache
from hfsynth.recipe.schema import TeacherConfig
from hfsynth.recipe.teacher_costs import Pricing
from hfsynth.runs.records import GenerationStats, RunStats
from hfsynth.teachers.spending import Spending, cost
from tests.cli_helpers import one_error_line, run_cli
from tests.openai_server import OpenAIServer, openai_server, usage
from tests.test_paid_once import LABELS, what_it_wrote, write_recipe

PRICING = {"input_per_million": 2.5, "output_per_million": 10.0, "currency": "EUR"}
CALLS = 12  # generation calls of the recipe: 3 labels x 4 calls


def with_teacher(recipe: Path, **teacher: Any) -> Path:
    data = yaml.safe_load(recipe.read_text())
    data["teacher"].update(teacher)
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    return recipe


def last_error_line(result: Any) -> str:
    """The command failed with one ``error:`` line, its last, after its progress lines and no traceback."""
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], result.stderr
    return lines[-1]


def paid(server: OpenAIServer) -> tuple[int, int]:
    """What the server charged, from its own answers' usage."""
    counts = [usage(body, server.answer_text(body)) for body in server.bodies]
    return sum(count["prompt_tokens"] for count in counts), sum(count["completion_tokens"] for count in counts)


def test_tokens_and_cost_are_recorded_per_stage_and_a_rerun_shows_them_cached(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with openai_server(LABELS) as server:
        recipe = with_teacher(write_recipe(tmp_path, server.base_url), pricing=PRICING)
        generated = run_cli("generate", str(recipe), "--out", str(out), timeout=300)
        assert generated.returncode == 0, generated.stderr
        prompt, completion = paid(server)
        assert len(server.bodies) == CALLS and prompt > 0 and completion > 0

        tokens = GenerationStats.load(out / "dataset" / "generation.json").teacher_tokens
        assert tokens is not None
        assert (tokens.calls, tokens.prompt_tokens, tokens.completion_tokens) == (CALLS, prompt, completion)
        assert tokens.cached_calls == 0 and tokens.uncounted_calls == 0 and tokens.currency == "EUR"
        assert tokens.cost == pytest.approx((prompt * 2.5 + completion * 10.0) / 1e6)
        card = (out / "dataset" / "README.md").read_text()
        assert f"written with {prompt + completion:,} teacher tokens ({prompt:,} prompt, {completion:,} completion" \
            in card
        stages = RunStats.load(out / "run_stats.json").stages
        assert stages["generate"].teacher_tokens == tokens

        # The plan, given the run: generation's answers at their measured average, not at max_new_tokens.
        planned = json.loads(run_cli("plan", str(recipe), "--out", str(out), "--json", timeout=300).stdout)
        teacher = planned["recipes"][0]["teacher"]
        assert teacher["measured"] and teacher["generation_answer_tokens"] == completion

        before = len(server.bodies)
        again = run_cli("generate", str(recipe), "--out", str(out), timeout=300)
        assert again.returncode == 0, again.stderr
        assert len(server.bodies) == before  # nothing paid twice
        rerun = GenerationStats.load(out / "dataset" / "generation.json").teacher_tokens
        assert rerun is not None and (rerun.calls, rerun.tokens, rerun.cost) == (0, 0, 0.0)
        assert (rerun.cached_calls, rerun.cached_prompt_tokens, rerun.cached_completion_tokens) == (
            CALLS, prompt, completion)
        assert f"{prompt + completion:,} teacher tokens" in (out / "dataset" / "README.md").read_text()

        evaluated = run_cli("evaluate", str(recipe), "--out", str(out), timeout=300)
        assert evaluated.returncode == 0, evaluated.stderr
        results = json.loads((out / "eval" / "results.json").read_text())
        assert results["teacher_tokens"]["calls"] == len(server.bodies) - before == 12
        assert f"{results['teacher_tokens']['prompt_tokens'] + results['teacher_tokens']['completion_tokens']:,} " \
               "teacher tokens" in evaluated.stderr  # the command's last line


def test_a_budget_stops_before_the_cap_and_a_higher_one_finishes_paying_nothing_twice(tmp_path: Path) -> None:
    with openai_server(LABELS) as server:
        recipe = write_recipe(tmp_path, server.base_url)
        assert run_cli("generate", str(recipe), "--out", str(tmp_path / "unbudgeted"), timeout=300).returncode == 0
        unbudgeted = what_it_wrote("generate", tmp_path / "unbudgeted")
        full = sum(paid(server))

    cap = full - 1  # below what the run takes
    out = tmp_path / "run"
    with openai_server(LABELS) as server:
        recipe = with_teacher(write_recipe(tmp_path, server.base_url), budget={"max_tokens": cap})
        stopped = run_cli("generate", str(recipe), "--out", str(out), timeout=300)
        line = last_error_line(stopped)
        assert line.startswith(f"error: teacher.budget (max_tokens {cap:,}) reached: generation stopped after ")
        assert "raise teacher.budget and run the same command" in line
        answered = len(server.bodies)
        assert 0 < answered < CALLS
        with CallCache(out / "cache" / "teacher_calls.sqlite") as cache:
            assert len(cache) == answered and sum(cache.spent()) == sum(paid(server)) <= cap  # stopped before it

    with openai_server(LABELS) as server:
        recipe = with_teacher(write_recipe(tmp_path, server.base_url), budget={"max_tokens": full * 10})
        finished = run_cli("generate", str(recipe), "--out", str(out), timeout=300)
        assert finished.returncode == 0, finished.stderr
        assert len(server.bodies) == CALLS - answered  # only what was never answered
    assert what_it_wrote("generate", out) == unbudgeted


def test_a_cost_cap_needs_prices(tmp_path: Path) -> None:
    recipe = with_teacher(write_recipe(tmp_path, "http://127.0.0.1:9/v1"), budget={"max_cost": 5})
    line = one_error_line(run_cli("recipes", "validate", str(recipe)))
    assert "teacher" in line and "budget.max_cost needs the teacher's pricing" in line


def test_affordable_counts_each_batch_at_its_worst_case() -> None:
    config = TeacherConfig(model="m", backend="remote", base_url="http://127.0.0.1:9/v1",
                           pricing=Pricing(input_per_million=1_000_000, output_per_million=2_000_000),
                           budget={"max_tokens": 100, "max_cost": 150})
    spending = Spending(config, "generation")
    assert spending.affordable((10, 10), [(20, 20), (20, 20), (20, 20)]) == 2  # 100 tokens, then 140
    assert spending.affordable((0, 0), [(10, 60)]) == 1 and cost(config.pricing, 10, 60) == 130
    assert spending.affordable((0, 0), [(10, 71)]) == 0  # 81 tokens, but 152 (over max_cost)
    assert Spending(config.model_copy(update={"budget": None}), "x").affordable((10**9, 0), [(1, 1)] * 3) == 3
