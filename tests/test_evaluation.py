"""Evaluation on real test sets: results.json rows and sections, the report and plots, the teacher's answers cached
on disk (nothing paid for twice, even after a kill), few-shot demonstrations, and the end-to-end run with a real
local teacher and trained students."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest
from PIL import Image

from hfsynth.cache import CallCache
from hfsynth.dataset import save_dataset
from hfsynth.errors import HfsynthError, RecipeError
from hfsynth.evaluation import LATENCY_TEXTS, run_evaluation
from hfsynth.evaluation.results import EvaluationResults
from hfsynth.generation.plan import load_seed_examples, seed_texts_the_plan_may_show
from hfsynth.generation.samples import GenerationResult, Sample
from hfsynth.human_reference import human_reference, pool_warnings
from hfsynth.pipeline import write_cards
from hfsynth.prompting import LabelScores, Prompt
from hfsynth.realdata import texts_shown_to_the_teacher
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import parse_recipe
from hfsynth.runs.folder import EvalFolder, RunFolder
from hfsynth.students.base import read_meta
from hfsynth.teachers import Teacher, load_teacher
from hfsynth.training import planned_runs, train_students
from tests.student_helpers import LABELS, make_recipe, sib200_rows, synthetic_dataset, write_test_set

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

    def generate(self, prompts: Sequence[Prompt], sampling: object, seed: int, on_answer: object = None) -> list[str]:
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
    # The completion rate (1 - unparseable), next to the scores; nothing answered in English: every resample scores 0.
    assert (en["unparseable"], de["unparseable"]) == (1.0, 0.0)
    typed = EvaluationResults.model_validate(results)
    assert [entry.completion_rate for entry in typed.summary] == [0.0, 1.0]
    en_summary, de_summary = results["summary"]
    assert en_summary["macro_f1_ci"] == [0.0, 0.0] and "completion_rate" not in en_summary
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
    with CallCache(RunFolder(tmp_path).cache) as cache:  # every answer, in the run's call cache
        assert len(cache) == 18

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
    with CallCache(RunFolder(tmp_path).cache) as cache:
        assert len(cache) == 3 + 4  # 3 alone, then a chunk of 4

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


# --- the human-data reference and the quality report ------------------------------------------------------------


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def reference_recipe(tmp_path: Path, students: Sequence[dict] = (), **reference: object) -> Recipe:
    """Few-shot seeds: the first 30 training rows of each language (the teacher sees some of them); reference data:
    all the training rows, and the test rows too (which must never be used)."""
    seeds = [{"language": language,
              "path": str(write_rows(tmp_path / f"seeds-{language}.jsonl", sib200_rows(language, "train")[:30]))}
             for language in ("en", "de")]
    sets = [{"language": language,
             "path": str(write_rows(tmp_path / f"reference-{language}.jsonl",
                                    sib200_rows(language, "train") + sib200_rows(language, "test")))}
            for language in ("en", "de")]
    generation = {"strategy": "few-shot", "seeds": seeds, "seeds_per_call": 2, "samples_per_label": 4,
                  "samples_per_call": 2}
    return eval_recipe(tmp_path, students, generation, reference={"sets": sets, **reference})


def test_the_reference_training_set_matches_the_synthetic_cells_and_never_holds_shown_or_test_texts(
        tmp_path: Path) -> None:
    recipe = reference_recipe(tmp_path)
    synthetic = synthetic_dataset(per_label=3)["train"]
    seed_texts = seed_texts_the_plan_may_show(recipe, load_seed_examples(recipe))  # what generation records
    reference, record = human_reference(recipe, synthetic, seed_texts)

    def cells(dataset: datasets.Dataset) -> Counter:
        names = dataset.features["label"].names
        return Counter((language, names[label]) for language, label in zip(dataset["language"], dataset["label"]))

    assert cells(reference) == cells(synthetic) == Counter({cell: 3 for cell in cells(synthetic)})
    assert reference.features == synthetic.features and set(reference["teacher"]) == {"human"}
    shown = texts_shown_to_the_teacher(recipe, seed_texts)
    # Generation shows 2 seeds per call, 2 calls per cell in each of the 3 possible rounds: 12 draws per label and
    # language.
    seeds = {row["text"] for language in ("en", "de") for row in sib200_rows(language, "train")[:30]}
    assert 0 < len(shown) <= 2 * 3 * 12 and shown <= seeds
    test = {row["text"] for language in ("en", "de") for row in sib200_rows(language, "test")}
    assert not set(reference["text"]) & (shown | test)
    # Reproducible: the same recipe draws the same texts.
    assert human_reference(recipe, synthetic, seed_texts)[0]["text"] == reference["text"]
    assert not record.smaller_than_synthetic and record.pool == "strict"
    english = record.cells["en"]["travel"]
    assert english.human == english.synthetic == 3 and english.left == english.existed - english.shown > 3


def test_reference_sets_shorter_than_the_synthetic_cells_give_what_they_have(tmp_path: Path) -> None:
    sets = [{"language": "en", "path": str(write_rows(tmp_path / "few.jsonl", sib200_rows("en", "train")[:5]))}]
    recipe = eval_recipe(tmp_path, reference={"sets": sets})
    reference, record = human_reference(recipe, synthetic_dataset(per_label=4)["train"], [])
    assert record.smaller_than_synthetic
    assert 0 < len(reference) <= 5 and set(reference["language"]) == {"en"}
    with pytest.raises(HfsynthError, match="no real example for any language and label"):
        human_reference(recipe, synthetic_dataset(per_label=4, languages=("de",))["train"], [])


def test_reference_recipe_fields_are_checked() -> None:
    student = {"name": "s", "kind": "encoder", "model": "all-minilm-l6-v2"}
    with pytest.raises(RecipeError, match="evaluation.reference.students names no student"):
        parse_recipe({**make_recipe([student]).model_dump(mode="json", exclude_defaults=True),
                      "evaluation": {"reference": {"sets": [{"language": "en", "path": "x.jsonl"}],
                                                   "students": ["other"]}}})
    recipe = make_recipe([student, {**student, "name": "t"}],
                         reference={"sets": [{"language": "en", "path": "x.jsonl"}], "students": ["t"]})
    assert [config.name for config in recipe.reference_students] == ["t"]
    runs = planned_runs(recipe, Path("/run"))
    assert [(run.config.name, run.data, str(run.directory)) for run in runs] == [
        ("s", "synthetic", "/run/students/s"), ("t", "synthetic", "/run/students/t"),
        ("t", "human", "/run/student_runs/t/human-all-per-label-seed0")]
    assert [run.is_main for run in runs] == [True, True, False]


def synthetic_dataset_folder(recipe: Recipe, folder: Path) -> None:
    """A saved synthetic dataset (real training sentences standing in), with one leaked test text and one chatter."""
    rows = synthetic_dataset(per_label=4)["train"]
    names = rows.features["label"].names
    samples = [Sample(text, names[label], language, f"{language}/{names[label]}/0")
               for text, label, language in zip(rows["text"], rows["label"], rows["language"], strict=True)]
    leaked = sib200_rows("en", "test")[0]
    samples += [Sample(leaked["text"], leaked["label"], "en", "en/x/1"),
                Sample("Here are two sentences about travel.", "travel", "en", "en/travel/1")]
    result = GenerationResult(samples, [], "few-shot", "test/teacher", calls=1, rounds=1, parsed=len(samples))
    save_dataset(recipe, result, folder)


@dataclass(frozen=True)
class ReferenceRun:
    recipe: Recipe
    root: Path
    results: EvaluationResults


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> ReferenceRun:
    """A run with a saved synthetic dataset, an encoder student trained twice (2 seeds) on it and twice on real
    reference data, evaluated against the answer key."""
    root = tmp_path_factory.mktemp("reference-run")
    student = {"name": "encoder", "kind": "encoder", "model": "all-minilm-l6-v2", "params": {"max_steps": 2},
               "repeats": 2}
    recipe = reference_recipe(root, [student])
    recipe = recipe.model_copy(update={"quality": recipe.quality.model_copy(
        update={"embedding_model": "all-minilm-l6-v2"})})
    run_folder = RunFolder(root)
    synthetic_dataset_folder(recipe, run_folder.dataset.root)
    trained = train_students(recipe, synthetic_dataset(per_label=4), root)
    assert [(run.run.data, run.run.repeat) for run in trained] == [("synthetic", 0), ("synthetic", 1), ("human", 0),
                                                                   ("human", 1)]
    assert read_meta(run_folder.student_run("encoder", None, 0, "human").root).training.data == "human"
    return ReferenceRun(recipe, root, run_evaluation(recipe, root, teacher=AnswerKeyTeacher()))


def test_students_against_the_teacher_and_against_human_data(reference_run: ReferenceRun) -> None:
    results, run_folder = reference_run.results, RunFolder(reference_run.root)
    # The teacher, then per language the student on synthetic and on human data.
    assert [(entry.role, entry.data, entry.language) for entry in results.summary] == [
        ("teacher", None, "en"), ("teacher", None, "de"), ("student", "synthetic", "en"),
        ("student", "synthetic", "de"), ("student", "human", "en"), ("student", "human", "de")]
    assert [entry.display_name for entry in results.headline] == ["test/answer-key (teacher)"] * 2 + ["encoder"] * 2
    for entry in results.summary:
        low, high = entry.macro_f1_ci
        assert entry.repeats == (1 if entry.role == "teacher" else 2) and 0 <= low <= high <= 1
    synthetic_en = results.summary[2]
    for comparison, against in ((synthetic_en.vs_teacher, "teacher"), (synthetic_en.vs_human, "human data")):
        low, high = comparison.macro_f1_difference_ci
        expected = "better" if low > 0 else "worse" if high < 0 else "no clear difference"
        assert comparison.against == against and comparison.verdict == expected and low <= high
    # The answer key is right on every text: no student beats it.
    assert synthetic_en.vs_teacher.verdict != "better" and synthetic_en.vs_teacher.macro_f1_difference < 0
    assert results.summary[4].vs_human is None  # the human run is the reference, not compared with itself

    pairs = {(row.student, row.language): row for row in results.synthetic_vs_human}
    assert set(pairs) == {("encoder", "en"), ("encoder", "de")}
    english = pairs[("encoder", "en")]
    assert english.synthetic_macro_f1 == synthetic_en.macro_f1 and english.human_macro_f1 == results.summary[4].macro_f1
    assert english.comparison == synthetic_en.vs_human and english.comparison.against_macro_f1 == english.human_macro_f1
    assert english.comparison.ratio == pytest.approx(english.synthetic_macro_f1 / english.human_macro_f1)
    assert english.synthetic_examples_per_label == english.human_examples_per_label == 4
    assert [(entry.data, entry.language) for entry in results.learning_curve] == [
        ("human", "de"), ("human", "en"), ("synthetic", "de"), ("synthetic", "en")]

    # The quality report, computed (the reference classifier judges fidelity: no teacher needed) and shown.
    quality = results.quality
    assert quality is not None and quality.fidelity.method == "reference classifier"
    assert quality.test_overlap.kept == 1 and quality.teacher_chatter.kept == 1
    eval_dir = run_folder.eval
    report = eval_dir.report.read_text()
    for section in ("## Students against the teacher", "## Synthetic vs human data", "## Synthetic data quality",
                    "| encoder | en | ", "encoder (human data)", "Test-set overlap"):
        assert section in report, section
    assert not eval_dir.feedback_plot.exists()  # the recipe has no feedback rounds
    for plot in eval_dir.plots:
        if plot == eval_dir.feedback_plot:
            continue
        with Image.open(plot) as image:
            image.verify()
    predictions = eval_dir.predictions.read_text().splitlines()
    assert len(predictions) == 2 + 2 * 4  # teacher per language; 4 student runs per language


def test_a_pool_the_seeds_exhaust_is_warned_about_and_compared_at_equal_size(tmp_path: Path) -> None:
    """The reference data is the few-shot seed set itself, as when both are a dataset's training split: the texts
    the teacher may be shown leave fewer than the synthetic data has. validate warns; the verdict compares the
    human runs with the student on a synthetic subsample of their size; the full run is a line apart."""
    student = {"name": "encoder", "kind": "encoder", "model": "all-minilm-l6-v2", "params": {"max_steps": 2}}
    seeds = [{"language": language, "path": str(tmp_path / f"seeds-{language}.jsonl")} for language in ("en", "de")]
    recipe = reference_recipe(tmp_path, [student], sets=seeds)
    warnings = pool_warnings(recipe)
    assert [line.split(":")[0] for line in warnings] == ["evaluation.reference, en", "evaluation.reference, de"]
    assert "synthetic data will have up to 4" in warnings[0] and "pool: all" in warnings[0]
    paper = reference_recipe(tmp_path, [student], sets=seeds, pool="all")
    assert pool_warnings(paper) == []

    shown = seed_texts_the_plan_may_show(recipe, load_seed_examples(recipe))
    run_folder = RunFolder(tmp_path / "run")
    synthetic_dataset_folder(recipe, run_folder.dataset.root)
    trained = train_students(recipe, synthetic_dataset(per_label=4), run_folder.root, teacher_shown=shown)
    assert [run.run.data for run in trained] == ["synthetic", "human", "synthetic-at-human-size"]
    results = run_evaluation(recipe, run_folder.root, teacher=AnswerKeyTeacher())

    pool = results.reference_pool
    assert pool is not None and pool.pool == "strict" and pool.smaller_than_synthetic
    counts = pool.per_label("en")
    assert counts["shown"] > 0 and counts["left"] == counts["existed"] - counts["shown"] and counts["synthetic"] == 4
    for row in results.synthetic_vs_human:
        assert row.synthetic_examples_per_label == row.human_examples_per_label < 4
        assert row.full_synthetic_examples_per_label == 4 and row.full_synthetic_macro_f1 is not None
        full = results.headline_entry("student", "encoder", row.language)
        assert full is not None and full.vs_human is None and row.full_synthetic_macro_f1 == full.macro_f1
    report = run_folder.eval.report.read_text()
    assert "| language | pool | real texts | possibly seen by the teacher | left | human runs | synthetic data |" in report
    assert "never a text the\nteacher may have seen (pool: strict)" in report
    write_cards(recipe, run_folder.root, results)
    card = run_folder.student("encoder").card.read_text()
    assert "Against real, human-labelled data at equal size" in card and "the student scores" in card
    assert f"Human data pool {pool.pool_text('en')}" in card and "Across languages: vs the teacher:" in card


def test_the_cards_say_where_synthetic_data_stands(reference_run: ReferenceRun) -> None:
    results, run_folder = reference_run.results, RunFolder(reference_run.root)
    synthetic_en = results.summary[2]
    write_cards(reference_run.recipe, reference_run.root, results)
    dataset_card = run_folder.dataset.card.read_text()
    assert "## Quality of the synthetic data" in dataset_card and "![Synthetic and real" in dataset_card
    assert f"| encoder | student | en | {synthetic_en.score_text('macro_f1')} |" in dataset_card
    assert f"{synthetic_en.vs_human.ratio_text()}: {synthetic_en.vs_human.statement} (4.0 per label, pool strict)" in dataset_card
    student_card = run_folder.student("encoder").card.read_text()
    assert (f"- **en**: this model {synthetic_en.score_text('macro_f1')}, the teacher "
            f"{results.summary[0].score_text('macro_f1')}: **{synthetic_en.vs_teacher.statement}**") in student_card
    assert f"the synthetic data reaches **{synthetic_en.vs_human.ratio_text()}** of it" in student_card


def test_the_space_evaluation_tab_shows_verdicts_human_data_and_quality(reference_run: ReferenceRun) -> None:
    from hfsynth.space.app import CompareApp
    from hfsynth.space.staging import stage_space

    results, run_folder = reference_run.results, RunFolder(reference_run.root)
    space = run_folder.space
    manifest = stage_space(reference_run.recipe, reference_run.root, space.root, for_hub=False)
    # Every plot of the run (all but the feedback rounds': the recipe has none).
    assert [Path(plot).name for plot in manifest.plots] == [plot.name for plot in run_folder.eval.plots
                                                            if plot != run_folder.eval.feedback_plot]
    table, summary, *plots = CompareApp(space.manifest).results()
    assert list(table["role"]) == ["teacher"] * 2 + ["student"] * 4
    assert list(table["data"])[2:] == ["synthetic", "synthetic", "human", "human"]
    synthetic_en = results.summary[2]
    assert table["vs_teacher"][2] == synthetic_en.vs_teacher.statement
    assert table["vs_human"][2] == synthetic_en.vs_human.statement and table["macro_f1_ci"][2].startswith("[")
    assert f"**{synthetic_en.vs_teacher.statement}**" in summary and "completion rate 100%" in summary
    assert f"synthetic data reaches {synthetic_en.vs_human.ratio_text()} of it" in summary
    assert "**Synthetic data quality**" in summary and "teacher chatter: 0 dropped, 1 left" in summary
    assert len(plots) == 4


def test_a_re_evaluation_keeps_the_quality_report_and_the_intervals(reference_run: ReferenceRun) -> None:
    """Same texts, same settings: the quality report is not recomputed and the intervals come out the same."""
    results, run_folder = reference_run.results, RunFolder(reference_run.root)
    stored = run_folder.dataset.quality.stat().st_mtime_ns
    again = run_evaluation(reference_run.recipe, reference_run.root, teacher=AnswerKeyTeacher())
    assert run_folder.dataset.quality.stat().st_mtime_ns == stored
    assert [entry.macro_f1_ci for entry in again.summary] == [entry.macro_f1_ci for entry in results.summary]
