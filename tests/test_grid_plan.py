"""`hfsynth plan`: the paper grid worked out from the recipe alone, each count checked against an independent
reading of the YAML, and a LoRA adapter's size against peft's own count."""

from __future__ import annotations

import math

import yaml
from peft import LoraConfig, get_peft_model

from hfsynth.grid_plan import plan_grid
from hfsynth.model_shapes import lora_parameters, meta_model
from hfsynth.recipes.files import load_recipe
from tests.cli_helpers import REPO_ROOT, run_cli

PECHER = REPO_ROOT / "recipes" / "pecher2026-topic.yaml"


def test_the_paper_grid_counts() -> None:
    raw = yaml.safe_load(PECHER.read_text())
    plan = plan_grid(load_recipe(PECHER))
    reference = set(raw["evaluation"].get("reference", {}).get("students", []))
    expected_runs = sum((1 + len(student.get("train_sizes", []))) * student.get("repeats", 1)
                        * (2 if student["name"] in reference else 1) for student in raw["students"])
    assert plan.student_runs == expected_runs > 500
    generation = raw["generation"]
    per_cell = math.ceil(generation["samples_per_label"] / generation.get("samples_per_call", 1))
    assert plan.generation_prompts == len(raw["languages"]) * len(raw["labels"]) * per_cell
    assert plan.generation_prompts_max == 3 * plan.generation_prompts  # two top-up rounds at most
    assert plan.test_texts is None and plan.test_sets == 11  # the test sets are on the Hub, no max_samples
    in_context = sum(student.runs for student in plan.students if student.kind == "in-context")
    assert plan.trained_runs == plan.student_runs - in_context < plan.student_runs  # in-context trains nothing
    assert plan.gpus_per_training == 1
    assert plan.gpu_hours(30, 2) == (plan.trained_runs * 30 + plan.student_runs * 2) / 60


def test_adapter_size_is_what_peft_trains() -> None:
    model = meta_model("smollm2-135m-instruct")
    ours = lora_parameters(model, 16, "all-linear")
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert ours == trainable


def test_plan_command_prints_the_grid() -> None:
    result = run_cli("plan", str(PECHER), str(REPO_ROOT / "recipes" / "quickstart.yaml"), "--training-minutes", "10",
                     timeout=300, HF_HUB_OFFLINE="1", COLUMNS="200")
    assert result.returncode == 0, result.stderr
    assert "pecher2026-topic" in result.stderr and "quickstart-topic-en" in result.stderr
    assert "at 10 min per student run" in result.stderr


def test_feedback_rounds_count_in_the_most_generation_may_cost(tmp_path) -> None:
    raw = yaml.safe_load((REPO_ROOT / "recipes" / "quickstart.yaml").read_text())
    for entry in (*raw["generation"]["seeds"], *raw["evaluation"]["sets"], *raw["evaluation"]["reference"]["sets"]):
        entry["path"] = str(REPO_ROOT / "recipes" / entry["path"])
    plain = plan_grid(load_recipe(_written(tmp_path / "plain.yaml", raw)))
    raw["generation"]["feedback"] = {"rounds": 2, "budget": 0.5}
    steered = plan_grid(load_recipe(_written(tmp_path / "feedback.yaml", raw)))
    extra = steered.generation_prompts_max - plain.generation_prompts_max
    cells = steered.languages * steered.labels
    least = math.ceil(0.5 * steered.samples / raw["generation"]["samples_per_call"])
    assert steered.generation_prompts == plain.generation_prompts and least <= extra <= least + 2 * (cells + 1)


def _written(path, data: dict):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
