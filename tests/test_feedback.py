"""Error-driven generation (S3 / ProGen) on a scripted teacher and a scripted steering student: the exact prompts
built from known errors, the budget, resuming after a kill mid-round, and the validation-leak guard. One slow test
runs the loop with the embedded teacher and the real head-only SetFit steering student."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from hfsynth.cache import CallCache
from hfsynth.errors import RecipeError
from hfsynth.generation.feedback import allocate, load_validation, round_budgets
from hfsynth.generation.prompts import GenerationRequest, generation_prompt
from hfsynth.generation.stage import generate_samples
from hfsynth.prompting import Prompt
from hfsynth.recipe.schema import SamplingParams
from hfsynth.recipes.files import parse_recipe
from hfsynth.text_measures import normalize
from tests.scripted_teacher import ScriptedTeacher

LABELS = ("sports", "health", "travel")
TOPIC_WORDS = {"sports": "the match ended with a late goal for the home team",
               "health": "the doctor said the new medicine helps patients sleep well",
               "travel": "our flight to the coast was delayed by almost three hours"}


def write_validation(path: Path, language: str) -> Path:
    """Three real texts per label, each long enough (9+ words) for the 8-gram leak check."""
    rows = [{"text": f"{TOPIC_WORDS[label]} number {index} in {language}", "label": label}
            for label in LABELS for index in range(3)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def recipe(tmp_path: Path, **feedback):  # noqa: ANN003, ANN201
    sets = [{"language": language, "path": str(write_validation(tmp_path / f"val-{language}.jsonl", language))}
            for language in ("en", "de")]
    return parse_recipe({
        "name": "t",
        "task": {"name": "topic", "description": "Classify the topic."},
        "labels": [{"name": label} for label in LABELS],
        "languages": ["en", "de"],
        "teacher": {"model": "smollm2-135m-instruct"},
        "generation": {"samples_per_label": 6, "samples_per_call": 2, "min_words": 3, "max_words": 10,
                       "feedback": {"rounds": 2, "budget": 0.5, "validation": {"sets": sets, "examples_per_label": 3},
                                    **feedback}},
        "curation": {"language_id": False, "min_words": 3},
        "dataset": {"repo_id": "me/t"},
    })


class MajorityStudent:
    """Predicts its training data's most frequent label (ties: the first by name): its errors are known exactly, and
    they change as the rounds change the data."""

    name = "scripted-majority"

    def __init__(self) -> None:
        self.fitted: list[int] = []

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self.fitted.append(len(texts))
        counts = Counter(labels)
        self.majority = min(counts, key=lambda label: (-counts[label], label))

    def predict(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        return [self.majority] * len(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.array([[len(text), sum(map(ord, text)) % 97, 1.0] for text in texts], dtype=float)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def feedback_prompts(teacher: ScriptedTeacher) -> list[str]:
    return [prompt.messages[0][1] for prompt in teacher.prompts_seen if "taken for:" in prompt.messages[0][1]
            or "good examples" in prompt.messages[0][1]]


def test_round_one_prompts_are_built_from_the_known_errors(tmp_path: Path) -> None:
    r = recipe(tmp_path)
    teacher = ScriptedTeacher()
    result = generate_samples(r, teacher, tmp_path / "cache.sqlite", steerer=MajorityStudent())
    report = result.feedback
    assert report is not None and [round.round for round in report.rounds] == [1, 2]
    # Balanced first pass: the student always says "health" (first by name), so every sports and travel text is an
    # error taken for health, and health's F1 is 2 * (1/3) / (1 + 1/3) = 0.5.
    first = {(c.language, c.label): c for c in report.rounds[0].choices}
    assert first[("en", "health")].f1 == 0.5 and first[("en", "sports")].f1 == 0.0
    assert first[("en", "sports")].confused_with == "health"
    # 9 samples over weights 0.5 / 1 / 1 per language: floors 0,1,1 then the largest remainders.
    assert {cell: c.asked for cell, c in first.items()} == {
        ("en", "health"): 1, ("en", "sports"): 2, ("en", "travel"): 2,
        ("de", "health"): 1, ("de", "sports"): 2, ("de", "travel"): 1}
    validation = load_validation(r, [])
    sports = sorted(text for text, label, language in zip(validation.texts, validation.labels, validation.languages,
                                                          strict=True) if (language, label) == ("en", "sports"))
    expected = generation_prompt(r, GenerationRequest("sports", "en", 2, 0, feedback_round=1,
                                                      errors=((sports[0], "health"), (sports[1], "health"))))
    assert expected.messages[0][1] in feedback_prompts(teacher)
    assert f"- {sports[0]} (taken for: health)" in expected.messages[0][1]
    # A cell with no misclassified text of its own (health) is shown its synthetic demonstrations instead.
    assert first[("en", "health")].shown_errors == [] and first[("en", "health")].shown_demonstrations
    # Every feedback sample says which round made it.
    assert Counter(sample.round for sample in result.samples)[1] == report.rounds[0].kept > 0


def test_budget_is_exact_and_recorded(tmp_path: Path) -> None:
    r = recipe(tmp_path, rounds=3, budget=0.5)
    assert round_budgets(r) == [6, 6, 6]  # 0.5 x 36 first-pass samples
    student = MajorityStudent()
    result = generate_samples(r, ScriptedTeacher(), tmp_path / "cache.sqlite", steerer=student)
    report = result.feedback
    assert [round.asked for round in report.rounds] == [6, 6, 6] and report.budget == 18
    assert result.asked == 36 + 18  # nothing dropped in the first pass: no top-up round
    assert all(round.asked == sum(c.asked for c in round.choices) for round in report.rounds)
    assert len(report.learning_curve) == 4  # the first pass, then after each round
    assert student.fitted[0] == 36 and student.fitted == sorted(student.fitted)  # each round trains on more data
    assert len(result.samples) == 36 + sum(round.kept for round in report.rounds)


def test_allocation_is_proportional_and_deterministic() -> None:
    from hfsynth.generation.feedback import Scores

    cells = [("en", "a"), ("en", "b"), ("en", "c")]
    scores = Scores(0.5, {("en", "a"): 1.0, ("en", "b"): 0.5, ("en", "c"): 0.0}, {})
    assert allocate(scores, cells, 3) == {("en", "b"): 1, ("en", "c"): 2}
    perfect = Scores(1.0, dict.fromkeys(cells, 1.0), {})
    assert allocate(perfect, cells, 4) == {("en", "a"): 2, ("en", "b"): 1, ("en", "c"): 1}


@pytest.mark.parametrize("signal", ["errors", "demonstrations", "both"])
def test_killed_mid_round_resumes_to_the_same_data(tmp_path: Path, signal: str) -> None:
    r = recipe(tmp_path, signal=signal)
    uninterrupted = generate_samples(r, ScriptedTeacher(), tmp_path / "full.sqlite", steerer=MajorityStudent())
    # First pass: 18 calls = 6 batches of 3; round 1: 6 calls = 2 batches; the 10th batch is inside round 2.
    cache = tmp_path / "killed.sqlite"
    with pytest.raises(KeyboardInterrupt):
        generate_samples(r, ScriptedTeacher(crash_after_batches=9), cache, steerer=MajorityStudent())
    with CallCache(cache) as stored:
        assert len(stored) == 27
    again = ScriptedTeacher()
    resumed = generate_samples(r, again, cache, steerer=MajorityStudent())
    assert resumed.cached_calls == 27 and again.stats.calls == resumed.calls - 27 > 0
    assert [(s.text, s.label, s.language, s.prompt_id) for s in resumed.samples] == [
        (s.text, s.label, s.language, s.prompt_id) for s in uninterrupted.samples]
    assert resumed.feedback == uninterrupted.feedback


class CopyingTeacher(ScriptedTeacher):
    """Writes back, word for word, every text its prompt shows (a teacher that copies instead of extrapolating)."""

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams, seed: int,
                 on_answer: Callable[[int, str], None] | None = None) -> list[str]:
        answers = super().generate(prompts, sampling, seed, on_answer=None)
        for position, prompt in enumerate(prompts):
            shown = [line[2:].split(" (taken for:")[0] for line in prompt.messages[0][1].splitlines()
                     if line.startswith("- ")]
            if shown:
                answers[position] = "\n".join(f"{n}. {text}" for n, text in enumerate(shown, 1))
            if on_answer is not None:
                on_answer(position, answers[position])
        return answers


def test_no_validation_text_reaches_the_dataset(tmp_path: Path) -> None:
    r = recipe(tmp_path, signal="errors")
    result = generate_samples(r, CopyingTeacher(), tmp_path / "cache.sqlite", steerer=MajorityStudent())
    validation = {normalize(text) for text in load_validation(r, []).texts}
    assert not validation & {normalize(sample.text) for sample in result.samples}
    leaks = Counter(record.reason for record in result.dropped if normalize(record.text) in validation)
    assert leaks["validation_overlap"] > 0 and set(leaks) == {"validation_overlap"}
    # The human-data reference never trains on them either: they are recorded as shown to the teacher.
    assert validation <= {normalize(text) for text in result.teacher_shown}


def test_validation_sets_must_not_be_test_sets(tmp_path: Path) -> None:
    data = write_validation(tmp_path / "real.jsonl", "en")
    base = {"name": "t", "task": {"name": "topic", "description": "Classify."},
            "labels": [{"name": label} for label in LABELS], "languages": ["en"],
            "teacher": {"model": "smollm2-135m-instruct"}, "dataset": {"repo_id": "me/t"},
            "evaluation": {"sets": [{"language": "en", "path": str(data)}]}}
    with pytest.raises(RecipeError, match=r"generation\.feedback\.validation\.sets\[0\].*evaluation\.sets"):
        parse_recipe({**base, "generation": {"feedback": {"validation": {"sets": [{"language": "en",
                                                                                   "path": str(data)}]}}}})
    with pytest.raises(RecipeError, match=r"generation\.feedback\.validation\.sets.*reference"):
        parse_recipe({**base, "generation": {"feedback": {}}})
    with pytest.raises(RecipeError, match=r"generation\.feedback\.student.*not a setfit student"):
        parse_recipe({**base, "evaluation": {**base["evaluation"], "reference": {"sets": [
            {"language": "en", "path": str(write_validation(tmp_path / "train.jsonl", "en"))}]}},
            "generation": {"feedback": {"student": "nope"}}})


@pytest.mark.slow
def test_embedded_teacher_feedback_killed_mid_round_resumes(tmp_path: Path) -> None:
    """The whole loop for real: the embedded SmolLM2 teacher and the head-only SetFit steering student, through
    ``pipeline.generate`` (the engine interface); an ``hfsynth generate`` SIGKILLed inside the second feedback round
    resumes to the same dataset as an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    import datasets

    from hfsynth.dataset import load_synthetic_dataset
    from hfsynth.pipeline import generate
    from hfsynth.recipe.schema import dump_recipe
    from hfsynth.recipes.files import load_recipe
    from hfsynth.runs.records import FeedbackReport

    quickstart = load_recipe(Path(__file__).parents[1] / "recipes" / "quickstart.yaml")
    data = quickstart.model_dump(mode="json", exclude_defaults=True)
    data["generation"].update(samples_per_label=2, feedback={"rounds": 2, "budget": 1.0, "signal": "both",
                                                             "validation": {"examples_per_label": 2}})
    data["students"] = [student for student in data["students"] if student["kind"] == "setfit"]
    data["quality"] = {"enabled": False}
    r = parse_recipe(data)
    _, result = generate(r, tmp_path / "whole")
    report = FeedbackReport.load(tmp_path / "whole" / "dataset" / "feedback.json")
    assert report.budget == 14 and [round.asked for round in report.rounds] == [7, 7]
    assert len(report.learning_curve) == 3 and report.student == "all-minilm-l6-v2"
    assert report.validation_texts == 14  # 2 per label, from the reference sets (the default)
    whole = load_synthetic_dataset(tmp_path / "whole" / "dataset")
    prompt_ids = [prompt_id for split in whole.values() for prompt_id in split["prompt_id"]]
    assert sum(prompt_id.startswith("feedback1/") for prompt_id in prompt_ids) == report.rounds[0].kept
    texts = {normalize(text) for split in whole.values() for text in split["text"]}
    assert not texts & {normalize(text) for text in load_validation(r, []).texts}
    card = (tmp_path / "whole" / "dataset" / "README.md").read_text()
    assert "2310.13671" in card and "2210.12329" in card

    # Killed once the first round's answers are cached and before the second round's are: mid-way through round 2.
    feedback_calls = [-(-choice.asked // r.generation.samples_per_call) for round in report.rounds
                      for choice in round.choices]
    first_calls = result.calls - sum(feedback_calls)
    recipe_file = tmp_path / "feedback.yaml"
    recipe_file.write_text(dump_recipe(r))
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "hfsynth.cli", "generate", str(recipe_file), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache, stored = out / "cache" / "teacher_calls.sqlite", 0
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and process.poll() is None:
        if cache.is_file():
            with CallCache(cache) as calls:
                stored = len(calls)
            if stored > first_calls:
                break
        time.sleep(0.2)
    assert process.poll() is None and first_calls < stored < result.calls, "not killed inside the feedback rounds"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "dataset").exists()

    _, resumed = generate(r, out)
    assert resumed.cached_calls >= stored and resumed.samples == result.samples
    assert FeedbackReport.load(out / "dataset" / "feedback.json") == report
    again = datasets.load_from_disk(str(out / "dataset"))
    for split in whole:
        assert again[split].to_list() == whole[split].to_list()


def test_card_report_and_space_show_the_rounds(tmp_path: Path) -> None:
    from hfsynth.cards.render import write_dataset_card
    from hfsynth.dataset import save_dataset
    from hfsynth.evaluation import run_evaluation
    from hfsynth.runs.folder import RunFolder
    from hfsynth.space.app import _results_summary
    from tests.student_helpers import sib200_rows
    from tests.test_evaluation import AnswerKeyTeacher, eval_recipe

    sets = []
    for language in ("en", "de"):
        path = tmp_path / f"train-{language}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in sib200_rows(language, "train")))
        sets.append({"language": language, "path": str(path)})
    r = eval_recipe(tmp_path, generation={
        "samples_per_label": 4, "samples_per_call": 2, "min_words": 3,
        "feedback": {"rounds": 2, "budget": 1.0, "signal": "errors", "validation": {"sets": sets,
                                                                                   "examples_per_label": 2}}})
    r = r.model_copy(update={"curation": r.curation.model_copy(update={"language_id": False}),
                             "quality": r.quality.model_copy(update={"enabled": False})})
    run = RunFolder(tmp_path / "run")
    result = generate_samples(r, ScriptedTeacher(), run.cache, steerer=MajorityStudent())
    save_dataset(r, result, run.dataset.root)
    card = write_dataset_card(r, run.dataset.root).content
    assert "Feedback rounds" in card and "2310.13671" in card and "wang-etal-2023-lets" in card
    assert "2210.12329" not in card.split("## Citation")[0]  # errors only: S3 is named, ProGen is not
    first = result.feedback.rounds[0]
    assert f"| 1 | {result.feedback.learning_curve[0]:.3f} | {first.asked} | {first.kept} |" in card
    assert f"|\n| after the last round | {result.feedback.learning_curve[-1]:.3f} |" in card  # one table

    results = run_evaluation(r, tmp_path / "run", teacher=AnswerKeyTeacher())
    assert results.feedback == result.feedback
    report = run.eval.report.read_text()
    assert "## Feedback rounds (error-driven generation)" in report and "![feedback rounds]" in report
    assert f"| 2 | {result.feedback.learning_curve[2]:.3f} | {result.feedback.rounds[1].asked} |" in report
    assert run.eval.feedback_plot.is_file()
    curve = " → ".join(f"{value:.3f}" for value in result.feedback.learning_curve)
    assert curve in _results_summary(results)


def test_a_test_set_named_by_another_path_is_still_refused(tmp_path: Path) -> None:
    from hfsynth.recipes.files import load_recipe

    data = write_validation(tmp_path / "real.jsonl", "en")
    (tmp_path / "sub").mkdir()
    recipe_file = tmp_path / "sub" / "r.yaml"
    recipe_file.write_text(json.dumps({
        "name": "t", "task": {"name": "topic", "description": "Classify."},
        "labels": [{"name": label} for label in LABELS], "languages": ["en"],
        "teacher": {"model": "smollm2-135m-instruct"}, "dataset": {"repo_id": "me/t"},
        "generation": {"feedback": {"validation": {"sets": [{"language": "en", "path": "../real.jsonl"}]}}},
        "evaluation": {"sets": [{"language": "en", "path": str(data)}]}}))
    with pytest.raises(RecipeError, match=r"r\.yaml: field 'generation\.feedback\.validation\.sets\[0\]'"):
        load_recipe(recipe_file)
