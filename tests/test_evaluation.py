"""Evaluation on real test sets: results.json rows and sections, the report and plots, the teacher's answers cached
on disk (nothing paid for twice, even after a kill), few-shot demonstrations, and the end-to-end run with a real
local teacher and trained students."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from hfsynth.errors import HfsynthError
from hfsynth.evaluation import LATENCY_TEXTS, run_evaluation
from hfsynth.recipe import Recipe
from hfsynth.run_folder import EvalFolder
from hfsynth.students import train_students
from hfsynth.teachers import LabelScores, Prompt, Teacher, load_teacher
from tests.student_fixtures import LABELS, make_recipe, sib200_rows, synthetic_dataset, write_test_set

ROW_FIELDS = {"model", "role", "kind", "language", "macro_f1", "accuracy", "n", "texts_per_s", "latency_ms",
              "train_size", "seed", "per_label", "confusion_matrix"}


class AnswerKeyTeacher(Teacher):
    """Answers from the test sets' own labels, except that it fails to answer on ``unanswered`` texts and names the
    wrong label on ``mistaken`` ones; ``fail_after`` classify calls, it dies as a killed process would."""

    model_id = "test/answer-key"
    uses_chat = True

    def __init__(self, unanswered: set[str] = frozenset(), mistaken: set[str] = frozenset(),
                 fail_after: int | None = None) -> None:
        super().__init__()
        self.answers = {row["text"]: row["label"] for language in ("en", "de") for row in sib200_rows(language, "test")}
        self.unanswered, self.mistaken, self.fail_after = unanswered, mistaken, fail_after
        self.prompts: list[Prompt] = []

    @property
    def batch_size(self) -> int:
        return 4

    def generate(self, prompts: Sequence[Prompt], sampling: object, seed: int) -> list[str]:
        raise NotImplementedError

    def classify(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelScores]:
        if self.fail_after is not None and self.stats.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.stats.calls += 1
        self.prompts += prompts
        scores = []
        for prompt in prompts:
            text = prompt.messages[-1][1]
            if text in self.unanswered:
                scores.append(LabelScores(None, raw="I am not sure."))
                continue
            label = self.answers[text]
            if text in self.mistaken:
                label = next(other for other in labels if other != label)
            scores.append(LabelScores({name: 0.9 if name == label else 0.1 / (len(labels) - 1) for name in labels}))
        return scores


def eval_recipe(tmp_path: Path, students: Sequence[dict] = (), generation: dict | None = None,
                **evaluation: object) -> Recipe:
    sets = [{"language": language, "path": str(write_test_set(tmp_path, language))} for language in ("en", "de")]
    return make_recipe(students, generation, sets=sets, max_samples=9, **evaluation)


def test_teacher_scores_cache_report_and_plots(tmp_path: Path) -> None:
    recipe = eval_recipe(tmp_path)
    english = {row["text"] for row in sib200_rows("en", "test")}
    german_politics = {row["text"] for row in sib200_rows("de", "test") if row["label"] == "politics"}
    teacher = AnswerKeyTeacher(unanswered=english, mistaken=german_politics)  # says science/technology
    first = run_evaluation(recipe, tmp_path, teacher=teacher)

    eval_dir = EvalFolder(tmp_path / "eval")
    results = json.loads(eval_dir.results.read_text())
    assert results == first.to_json()
    assert results["languages"] == ["en", "de"] and results["labels"] == LABELS
    assert results["teacher"] == {"model": "test/answer-key", "mode": "zero-shot", "demonstrations_per_label": 0}
    en, de = results["rows"]
    assert ROW_FIELDS | {"unparseable"} <= set(en)
    # Stratified to 9 of 121: 4 science/technology, 3 travel, 2 politics (51:40:30).
    assert (en["role"], en["kind"], en["n"]) == ("teacher", "zero-shot", 9)
    assert [de["per_label"][label]["support"] for label in LABELS] == [4, 3, 2]
    assert en["unparseable"] == 1.0 and en["accuracy"] == 0.0 and en["macro_f1"] == 0.0
    # de: the 2 politics texts called science/technology. science/technology: P 4/6, R 1 -> F1 0.8; travel: F1 1;
    # politics: F1 0.
    assert de["unparseable"] == 0.0 and de["accuracy"] == pytest.approx(7 / 9)
    assert de["macro_f1"] == pytest.approx((0.8 + 1 + 0) / 3)
    assert en["confusion_matrix"]["labels"][-1] == "(unparseable)"
    assert de["latency_ms"] > 0 and de["texts_per_s"] > 0
    assert [entry["language"] for entry in results["summary"]] == ["en", "de"]
    assert results["learning_curve"] == [] and results["synthetic_vs_human"] == []
    # The completion rate, next to the scores; nothing answered in English: every resample scores 0.
    assert (en["completion_rate"], de["completion_rate"]) == (0.0, 1.0)
    en_summary, de_summary = results["summary"]
    assert en_summary["macro_f1_ci"] == [0.0, 0.0] and en_summary["completion_rate"] == 0.0
    low, high = de_summary["macro_f1_ci"]
    assert low < de_summary["macro_f1"] <= high <= 1.0  # 9 texts: a wide interval
    assert results["bootstrap"] == {"resamples": 1000, "confidence": 0.95, "seed": 0}
    predictions = [json.loads(line) for line in eval_dir.predictions.read_text().splitlines()]
    assert [(record["model"], record["language"]) for record in predictions] == [("test/answer-key", "en"),
                                                                                ("test/answer-key", "de")]
    assert predictions[0]["predicted"] == [None] * 9 and len(predictions[1]["gold"]) == 9
    assert predictions[1]["predicted"] == [label if label != "politics" else "science/technology"
                                           for label in predictions[1]["gold"]]

    # 9 texts per language: 3 alone (latency), then chunks of the teacher's batch size 4 -> 3 + 2 calls.
    assert teacher.stats.calls == 2 * (LATENCY_TEXTS + 2)
    cached = [json.loads(line) for line in eval_dir.teacher_predictions.read_text().splitlines()]
    assert len(cached) == 18 and {"key", "model", "language", "text", "probabilities"} <= set(cached[0])

    report = eval_dir.report.read_text()
    assert "| test/answer-key (teacher) | zero-shot | 0.000 [0.000, 0.000] | 0.600 [" in report
    assert "| en | 0.0 % | 0.000 [0.000, 0.000] |" in report and "| de | 100.0 % | 0.600 [" in report
    assert "| 50.0 % |" in report  # the completion rate in the speed table, averaged over the languages
    assert "## Synthetic vs human data" not in report and "## Synthetic data quality" not in report
    assert not eval_dir.human_plot.exists() and not eval_dir.quality_plot.exists()
    for plot in (eval_dir.bars_plot, eval_dir.curve_plot):
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.size[0] > 300
            image.verify()

    # A re-run answers from the cache: no teacher call, the same scores.
    again = run_evaluation(recipe, tmp_path, teacher=teacher).to_json()
    assert teacher.stats.calls == 2 * (LATENCY_TEXTS + 2)
    assert [row["macro_f1"] for row in again["rows"]] == [row["macro_f1"] for row in results["rows"]]


def test_a_killed_evaluation_keeps_the_teacher_answers_it_got(tmp_path: Path) -> None:
    recipe = eval_recipe(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(recipe, tmp_path, teacher=AnswerKeyTeacher(fail_after=4))
    assert len(EvalFolder(tmp_path / "eval").teacher_predictions.read_text().splitlines()) == 3 + 4  # 3 alone, then 4

    teacher = AnswerKeyTeacher()
    run_evaluation(recipe, tmp_path, teacher=teacher)
    assert len(teacher.prompts) == 2 * 9 - 7  # only what was not answered before the kill


def test_few_shot_teacher_sees_real_seed_examples_never_test_texts(tmp_path: Path) -> None:
    # The seed file is the test file itself: the texts being evaluated must still never be shown.
    seeds = [{"language": language, "path": str(write_test_set(tmp_path, language))} for language in ("en", "de")]
    recipe = eval_recipe(tmp_path, generation={"strategy": "few-shot", "seeds": seeds}, teacher_examples_per_label=1)
    teacher = AnswerKeyTeacher()
    results = run_evaluation(recipe, tmp_path, teacher=teacher).to_json()
    assert results["teacher"]["mode"] == "few-shot" and results["rows"][0]["kind"] == "few-shot"
    test_texts = set(teacher.answers)
    evaluated = {prompt.messages[-1][1] for prompt in teacher.prompts}
    for prompt in teacher.prompts:
        demonstrations = prompt.messages[1:-1]
        assert [role for role, _ in demonstrations] == ["user", "assistant"] * len(LABELS)
        shown = {text for role, text in demonstrations if role == "user"}
        assert shown and not shown & evaluated and shown <= test_texts


def test_few_shot_teacher_without_seeds_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HfsynthError, match="generation.seeds has no real examples for language 'en'"):
        run_evaluation(eval_recipe(tmp_path, teacher_examples_per_label=2), tmp_path, teacher=AnswerKeyTeacher())


def test_untrained_or_changed_students_are_an_error(tmp_path: Path) -> None:
    student = {"name": "encoder", "kind": "encoder", "model": "all-minilm-l6-v2", "params": {"max_steps": 1}}
    with pytest.raises(HfsynthError, match="student 'encoder' is not trained yet"):
        run_evaluation(eval_recipe(tmp_path, [student]), tmp_path, teacher=AnswerKeyTeacher())
    train_students(eval_recipe(tmp_path, [student]), synthetic_dataset(per_label=1), tmp_path)
    changed = {**student, "params": {"max_steps": 2}}
    with pytest.raises(HfsynthError, match="trained with other settings"):
        run_evaluation(eval_recipe(tmp_path, [changed]), tmp_path, teacher=AnswerKeyTeacher())


@pytest.mark.slow
def test_local_teacher_against_students_with_a_learning_curve(tmp_path: Path) -> None:
    students = [
        {"name": "encoder", "kind": "encoder", "model": "all-minilm-l6-v2",
         "params": {"num_epochs": 1, "batch_size": 8}, "train_sizes": [2], "repeats": 2},
        {"name": "setfit", "kind": "setfit", "model": "all-minilm-l6-v2", "params": {"num_iterations": 1}},
    ]
    recipe = eval_recipe(tmp_path, students)
    train_students(recipe, synthetic_dataset(per_label=4), tmp_path)
    with load_teacher(recipe.teacher) as teacher:
        results = run_evaluation(recipe, tmp_path, teacher=teacher).to_json()

    rows = results["rows"]
    # 2 teacher rows, then per language: encoder all x 2 seeds, encoder 2-per-label x 2 seeds, setfit all.
    assert len(rows) == 2 + 2 * 5
    for row in rows:
        assert ROW_FIELDS <= set(row)
        assert 0.0 <= row["macro_f1"] <= 1.0 and 0.0 <= row["accuracy"] <= 1.0 and row["n"] == 9
        assert sum(map(sum, row["confusion_matrix"]["matrix"])) == 9
    teacher_row = rows[0]
    assert teacher_row["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and teacher_row["unparseable"] == 0.0
    encoder_rows = [row for row in rows if row["model"] == "encoder" and row["language"] == "en"]
    assert sorted((row["train_size"] or 0, row["seed"]) for row in encoder_rows) == [(0, 0), (0, 1), (2, 0), (2, 1)]

    summary = {(entry["model"], entry["language"]): entry for entry in results["summary"]}
    assert summary[("encoder", "en")]["repeats"] == 2 and summary[("setfit", "de")]["repeats"] == 1
    curve = [(entry["model"], entry["language"], entry["train_examples_per_label"], entry["repeats"])
             for entry in results["learning_curve"]]
    assert curve == [("encoder", "de", 2, 2), ("encoder", "de", 4, 2), ("encoder", "en", 2, 2),
                     ("encoder", "en", 4, 2), ("setfit", "de", 4, 1), ("setfit", "en", 4, 1)]
    report = EvalFolder(tmp_path / "eval").report.read_text()
    assert "## Learning curve" in report and "| encoder | synthetic | en | 2 |" in report
    eval_dir = EvalFolder(tmp_path / "eval")
    for plot in (eval_dir.bars_plot, eval_dir.curve_plot):
        with Image.open(plot) as image:
            image.verify()
