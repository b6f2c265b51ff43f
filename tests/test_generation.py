"""The generation stage: planning, caching, top-up rounds, and resuming after a crash with nothing lost or repeated.

A scripted teacher places crashes exactly; the real teachers are covered in test_local_teacher/test_remote_teacher
and end to end in test_cli.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets
import pytest

from hfsynth.cache import CallCache
from hfsynth.cards.render import write_dataset_card
from hfsynth.dataset import save_dataset
from hfsynth.generation.plan import plan_requests
from hfsynth.generation.stage import generate_samples
from hfsynth.recipes.files import parse_recipe
from tests.scripted_teacher import ScriptedTeacher


def recipe(**generation):  # noqa: ANN003, ANN201
    return parse_recipe({
        "name": "t",
        "task": {"name": "topic", "description": "Classify the topic."},
        "labels": [{"name": "sports"}, {"name": "health"}, {"name": "travel"}],
        "languages": ["en", "de"],
        "teacher": {"model": "smollm2-135m-instruct"},
        "generation": {"samples_per_label": 6, "samples_per_call": 2, "min_words": 3, "max_words": 10, **generation},
        "curation": {"language_id": False, "min_words": 3},
        "dataset": {"repo_id": "me/t"},
    })


def rows(result) -> list[tuple[str, str, str, str]]:  # noqa: ANN001
    return [(s.language, s.label, s.text, s.prompt_id) for s in result.samples]


def test_plan_covers_every_label_and_language() -> None:
    r = recipe()
    needed = {(lang, label): 6 for lang in r.languages for label in r.label_names}
    requests = plan_requests(r, needed, 0, {})
    assert len(requests) == 2 * 3 * 3
    assert Counter((q.language, q.label) for q in requests) == Counter({cell: 3 for cell in needed})
    assert sum(q.count for q in requests) == 36
    # Top-up rounds get fresh call indices, so fresh prompts and cache keys.
    top_up = plan_requests(r, {("en", "sports"): 1}, 1, {})
    assert [(q.call_index, q.count) for q in top_up] == [(3, 1)]


def test_every_cell_reaches_its_target(tmp_path: Path) -> None:
    result = generate_samples(recipe(), ScriptedTeacher(), tmp_path / "cache.sqlite")
    assert Counter((s.language, s.label) for s in result.samples) == Counter(
        {(lang, label): 6 for lang in ("en", "de") for label in ("sports", "health", "travel")})
    assert result.rounds == 1 and result.calls == 18


def test_top_up_rounds_replace_dropped_duplicates(tmp_path: Path) -> None:
    teacher = ScriptedTeacher(repeat_every=4)
    result = generate_samples(recipe(), teacher, tmp_path / "cache.sqlite")
    assert result.rounds > 1, "duplicates should have triggered a top-up round"
    assert Counter(r.reason for r in result.dropped)["duplicate"] > 0
    assert len(result.samples) == 36


def test_no_top_up_rounds_asks_exactly_the_plan(tmp_path: Path) -> None:
    """top_up_rounds: 0 asks each cell's samples once, so two set-ups can be compared at equal teacher samples."""
    result = generate_samples(recipe(top_up_rounds=0), ScriptedTeacher(repeat_every=4), tmp_path / "cache.sqlite")
    assert result.rounds == 1 and result.asked == 36 and result.calls == 18
    assert Counter(r.reason for r in result.dropped)["duplicate"] > 0 and len(result.samples) < 36


def test_second_run_is_served_from_the_cache(tmp_path: Path) -> None:
    first = generate_samples(recipe(), ScriptedTeacher(), tmp_path / "cache.sqlite")
    again = ScriptedTeacher()
    second = generate_samples(recipe(), again, tmp_path / "cache.sqlite")
    assert again.stats.calls == 0 and second.cached_calls == second.calls
    assert rows(first) == rows(second)


@pytest.mark.parametrize("crash_after", [0, 1, 3, 5])
def test_crash_then_resume_equals_uninterrupted_run(tmp_path: Path, crash_after: int) -> None:
    uninterrupted = generate_samples(recipe(), ScriptedTeacher(repeat_every=5), tmp_path / "full.sqlite")

    cache = tmp_path / "crashed.sqlite"
    with pytest.raises(KeyboardInterrupt):
        generate_samples(recipe(), ScriptedTeacher(crash_after_batches=crash_after, repeat_every=5), cache)
    with CallCache(cache) as stored:
        assert len(stored) == 3 * crash_after  # every finished batch was kept, nothing half-written

    resumed_teacher = ScriptedTeacher(repeat_every=5)
    resumed_teacher.stats.calls = 3 * crash_after  # the scripted teacher's repeats depend on its call counter
    resumed = generate_samples(recipe(), resumed_teacher, cache)
    assert resumed.cached_calls >= 3 * crash_after
    assert rows(resumed) == rows(uninterrupted)
    assert len(set(rows(resumed))) == len(rows(resumed))  # nothing duplicated


def test_saved_dataset_schema_and_card(tmp_path: Path) -> None:
    r = recipe(validation_fraction=0.2)
    result = generate_samples(r, ScriptedTeacher(), tmp_path / "cache.sqlite")
    save_dataset(r, result, tmp_path / "dataset")
    write_dataset_card(r, tmp_path / "dataset")
    loaded = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].features["label"].names == ["sports", "health", "travel"]
    assert {"text", "label", "language", "teacher", "strategy", "prompt_id"} <= set(loaded["train"].column_names)
    assert len(loaded["train"]) + len(loaded["validation"]) == 36
    # every label of every language stays in train
    train_cells = Counter(zip(loaded["train"]["language"], loaded["train"]["label"], strict=True))
    assert len(train_cells) == 6
    assert set(loaded["train"]["teacher"]) == {"test/scripted-teacher"}
    assert (tmp_path / "dataset" / "recipe.yaml").is_file()
    card = (tmp_path / "dataset" / "README.md").read_text()
    assert "arxiv.org/abs/2601.16278" in card and "pecher-etal-2026-better" in card


class BatchBoundTeacher(ScriptedTeacher):
    """A teacher whose answers depend on their whole batch, as a local model's do (padding, one seed per batch)."""

    answers_need_their_batch = True

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []  # prompts per generate call

    def generate(self, prompts, sampling, seed, on_answer=None, positions=None):  # noqa: ANN001, ANN201
        self.asked.append(len(prompts))
        return super().generate(prompts, sampling, seed, on_answer, positions)


def test_a_batch_a_kill_left_half_stored_is_asked_again_whole(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    first = generate_samples(recipe(), BatchBoundTeacher(), cache)
    with CallCache(cache) as stored:  # a kill between two answers' stores: the first batch's last answer is lost
        keys = list(stored.get_many([key for key, in stored._db.execute("SELECT key FROM calls")]))
        stored._db.execute("DELETE FROM calls WHERE key = ?", (keys[2],))
    again = BatchBoundTeacher()
    second = generate_samples(recipe(), again, cache)
    assert again.asked == [again.batch_size]  # the whole batch, not the one answer missing
    assert rows(second) == rows(first)
