"""The recipes shipped in recipes/: every one validates (library and CLI), the paper recipes carry the papers'
settings, and the embedded recipes run offline (embedded models, bundled files)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfsynth.cli import app
from hfsynth.embedded import EMBEDDED_MODELS
from hfsynth.realdata import load_labelled_set
from hfsynth.recipe.schema import Recipe
from hfsynth.recipe.student_kinds import student_kind
from hfsynth.recipes.files import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
ALL = sorted(RECIPES.glob("*.yaml"))

PECHER = ["pecher2026-topic", "pecher2026-sentiment", "pecher2026-intent", "pecher2026-sarcasm"]
LI = ["li2023-zero-shot", "li2023-few-shot"]
EMBEDDED = ["quickstart", "sib200-multilingual", "nusax-sentiment"]

PAPER_LANGUAGES = {"az", "cy", "de", "en", "he", "id", "ro", "sl", "sw", "te", "th"}
SIB_TOPICS = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]
MASSIVE_INTENTS = {
    "alarm_query", "audio_volume_down", "calendar_remove", "cooking_recipe", "datetime_convert", "email_sendemail",
    "play_audiobook", "recommendation_movies", "transport_ticket", "weather_query",
}
FLORES = {"az": "azj_Latn", "cy": "cym_Latn", "de": "deu_Latn", "en": "eng_Latn", "he": "heb_Hebr", "id": "ind_Latn",
          "ro": "ron_Latn", "sl": "slv_Latn", "sw": "swh_Latn", "te": "tel_Telu", "th": "tha_Thai"}
MASSIVE_LOCALES = {"az": "az-AZ", "cy": "cy-GB", "de": "de-DE", "en": "en-US", "he": "he-IL", "id": "id-ID",
                   "ro": "ro-RO", "sl": "sl-SL", "sw": "sw-KE", "te": "te-IN", "th": "th-TH"}
SMALL_LLMS = {"meta-llama/Llama-3.1-8B-Instruct", "google/gemma-3-4b-it", "Qwen/Qwen2.5-7B-Instruct"}


def recipe(name: str) -> Recipe:
    return load_recipe(RECIPES / f"{name}.yaml")


def test_every_expected_recipe_is_shipped() -> None:
    assert {path.stem for path in ALL} >= set(PECHER + LI + EMBEDDED)


@pytest.mark.parametrize("path", ALL, ids=lambda path: path.stem)
def test_recipe_validates_with_its_student_params(path: Path) -> None:
    loaded = load_recipe(path)
    # Each student's params are its kind's typed model, parsed when the recipe loaded: a typo fails there.
    for student in loaded.students:
        assert isinstance(student.params, student_kind(student.kind).params)
    assert loaded.name and loaded.evaluation.sets


@pytest.mark.parametrize("path", ALL, ids=lambda path: path.stem)
def test_cli_validates_recipe(path: Path) -> None:
    result = CliRunner().invoke(app, ["recipes", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


@pytest.mark.parametrize("path", ALL, ids=lambda path: path.stem)
def test_placeholder_ids_are_marked(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if "your-org/" in text:
        assert "PLACEHOLDER" in text, f"{path.name} uses a your-org/ placeholder without saying so"


# --- Pecher et al. (2026) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PECHER)
def test_pecher_generation_and_teacher(name: str) -> None:
    loaded = recipe(name)
    expected_languages = {"en"} if name == "pecher2026-sarcasm" else PAPER_LANGUAGES
    assert set(loaded.languages) == expected_languages and len(loaded.languages) == len(expected_languages)
    assert loaded.teacher.backend == "remote"
    assert loaded.teacher.model == "meta-llama/Meta-Llama-3-70B-Instruct"
    assert loaded.teacher.base_url and loaded.teacher.base_url.startswith("http")
    assert loaded.generation.samples_per_label == 200
    assert loaded.generation.strategy == "few-shot"  # per label and target language, with demonstrations
    assert {seed_set.language for seed_set in loaded.generation.seeds} == expected_languages
    # The teacher classifies zero-shot: the baseline the students should beat.
    assert loaded.evaluation.teacher_examples_per_label == 0
    assert loaded.evaluation.max_samples is None
    eval_languages = [seed_set.language for seed_set in loaded.evaluation.sets]
    assert sorted(eval_languages) == sorted(expected_languages)
    assert all(seed_set.hub_id for seed_set in loaded.evaluation.sets)


@pytest.mark.parametrize("name", PECHER)
def test_pecher_students(name: str) -> None:
    loaded = recipe(name)
    by_kind: dict[str, list] = {}
    for student in loaded.students:
        by_kind.setdefault(student.kind, []).append(student)
        if student.kind != "in-context":
            assert student.train_sizes, f"{student.name}: the paper sweeps the training size"
        assert student.repeats == 20

    (encoder,) = by_kind["encoder"]
    assert encoder.model.startswith("FacebookAI/xlm-roberta-")
    encoder_params = encoder.params
    assert (encoder_params.learning_rate, encoder_params.num_epochs, encoder_params.max_length) == (1e-5, 50, 256)

    assert {student.model for student in by_kind["sft"]} == SMALL_LLMS
    for student in by_kind["sft"]:
        params = student.params
        assert (params.r, params.alpha, params.dropout) == (16, 16, 0.05)
        assert params.learning_rate == pytest.approx(3e-5)
        assert params.max_steps == 600

    assert {student.model for student in by_kind["in-context"]} == SMALL_LLMS
    for student in by_kind["in-context"]:
        assert student.params.examples_per_label == 2


def test_pecher_topic_uses_the_sib200_labels_and_test_split() -> None:
    loaded = recipe("pecher2026-topic")
    assert loaded.label_names == SIB_TOPICS
    bundled = {json.loads(line)["label"] for line in (RECIPES.parent / "data/sib200/eng_Latn/test.jsonl").open()}
    assert set(loaded.label_names) == bundled
    for seed_set in loaded.evaluation.sets:
        assert (seed_set.hub_id, seed_set.config, seed_set.split) == ("Davlan/sib200", FLORES[seed_set.language], "test")
        assert seed_set.label_column == "category"
    for seed_set in loaded.generation.seeds:
        assert (seed_set.hub_id, seed_set.config, seed_set.split) == ("Davlan/sib200", FLORES[seed_set.language], "train")


def test_pecher_intent_uses_ten_massive_intents() -> None:
    loaded = recipe("pecher2026-intent")
    assert set(loaded.label_names) == MASSIVE_INTENTS and len(loaded.labels) == 10
    for seed_set in [*loaded.generation.seeds, *loaded.evaluation.sets]:
        assert seed_set.hub_id == "AmazonScience/massive"
        assert seed_set.config == MASSIVE_LOCALES[seed_set.language]
        assert (seed_set.text_column, seed_set.label_column) == ("utt", "intent")
        # The other 50 of MASSIVE's 60 intents map to null: their rows are dropped.
        assert set(seed_set.label_map.values()) == {None}
        assert len(seed_set.label_map) == 50 and not MASSIVE_INTENTS & set(seed_set.label_map)
    assert {seed_set.split for seed_set in loaded.evaluation.sets} == {"test"}


def test_pecher_binary_tasks() -> None:
    assert recipe("pecher2026-sentiment").label_names == ["negative", "positive"]
    sarcasm = recipe("pecher2026-sarcasm")
    assert len(sarcasm.labels) == 2 and sarcasm.task.subjectivity == "high"


# --- Li et al. (2023) ----------------------------------------------------------------------------------------------


def test_li_recipes_differ_only_in_the_generation_strategy() -> None:
    zero, few = recipe("li2023-zero-shot"), recipe("li2023-few-shot")
    assert (zero.generation.strategy, few.generation.strategy) == ("zero-shot", "few-shot")
    assert not zero.generation.seeds and few.generation.seeds
    assert zero.name != few.name and zero.dataset.repo_id != few.dataset.repo_id
    for part in ("task", "labels", "languages", "teacher", "students", "evaluation", "curation"):
        assert getattr(zero, part) == getattr(few, part), part
    same = {"samples_per_label", "samples_per_call", "diversity_every", "context", "style", "min_words", "max_words"}
    assert {key: getattr(zero.generation, key) for key in same} == {key: getattr(few.generation, key) for key in same}
    # The paper's point: how subjective the task is decides how far synthetic data lags behind real data.
    assert zero.task.subjectivity == "high"
    assert zero.generation.diversity_every > 0
    assert zero.teacher.backend == "remote"
    assert {student.kind for student in zero.students} == {"encoder"}
    assert {student.model for student in zero.students} == {"google-bert/bert-base-uncased", "FacebookAI/roberta-base"}


# --- embedded, runnable recipes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_recipe_is_offline(name: str) -> None:
    loaded = recipe(name)
    assert loaded.teacher.backend == "local" and loaded.teacher.model in EMBEDDED_MODELS
    for student in loaded.students:
        assert student.model in EMBEDDED_MODELS, student.model
        if student.kind in ("in-context", "sft"):
            assert EMBEDDED_MODELS[student.model].kind == "causal-lm"
        if "embedding_model" in student.params.model_fields_set:
            assert student.params.embedding_model in EMBEDDED_MODELS
    sets = [*loaded.generation.seeds, *loaded.evaluation.sets]
    assert loaded.evaluation.sets
    for seed_set in sets:
        assert seed_set.hub_id is None
        assert Path(seed_set.path).is_file()  # load_recipe made it absolute and checked it exists
        assert Path(seed_set.path).is_relative_to(RECIPES.parent / "data")
        # Cards name the public dataset the file is a copy of.
        assert seed_set.dataset_id and seed_set.dataset_config
    assert {seed_set.language for seed_set in loaded.evaluation.sets} == set(loaded.languages)
    if loaded.generation.strategy == "few-shot":
        assert {seed_set.language for seed_set in loaded.generation.seeds} == set(loaded.languages)


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_recipe_files_load_with_the_recipe_labels(name: str) -> None:
    loaded = recipe(name)
    for seed_set in [*loaded.generation.seeds, *loaded.evaluation.sets]:
        rows = load_labelled_set(seed_set, loaded.label_names)
        assert set(rows["label"]) == set(loaded.label_names)
        assert set(rows["language"]) == {seed_set.language}


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_recipe_data_matches_its_card_ids(name: str) -> None:
    """The bundled folder a set comes from agrees with the dataset config named for the card."""
    nusax = {"ind": "indonesian", "eng": "english", "jav": "javanese"}
    for seed_set in [*recipe(name).generation.seeds, *recipe(name).evaluation.sets]:
        folder = Path(seed_set.path).parent.name
        if seed_set.dataset_id == "Davlan/sib200":
            assert folder == seed_set.dataset_config
        elif seed_set.dataset_id == "indonlp/NusaX-senti":
            assert folder == nusax[seed_set.dataset_config]
        else:
            pytest.fail(f"unexpected dataset id {seed_set.dataset_id}")
        assert re.fullmatch(r"(train|dev|test)\.jsonl", Path(seed_set.path).name)
        assert Path(seed_set.path).stem == {"validation": "dev"}.get(seed_set.split, seed_set.split)
