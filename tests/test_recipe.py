"""Recipe validation: good recipes load; every kind of bad recipe gets one line naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hfsynth.errors import RecipeError
from hfsynth.recipe.schema import dump_recipe
from hfsynth.recipes.files import load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def minimal() -> dict:
    return {
        "name": "t",
        "task": {"name": "topic", "description": "Classify the topic."},
        "labels": [{"name": "sports"}, {"name": "health"}],
        "languages": ["en"],
        "teacher": {"model": "smollm2-135m-instruct"},
        "dataset": {"repo_id": "me/t"},
    }


def write(tmp_path: Path, data: object, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.labels and recipe.languages
    # The source text is kept verbatim: it is what gets published beside the dataset.
    assert recipe.source_text == path.read_text(encoding="utf-8")


def test_minimal_recipe_gets_defaults(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, minimal()))
    assert recipe.label_names == ["sports", "health"]
    assert recipe.generation.strategy == "zero-shot"
    assert recipe.teacher.backend == "local"
    # dump -> parse round trip keeps the meaning
    assert parse_recipe(yaml.safe_load(dump_recipe(recipe))).model_dump() == recipe.model_dump()


def mutate(path: str, value: object) -> dict:
    data = minimal()
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return data


DELETE = object()

BAD = [
    ("unknown top-level key", mutate("colour", "red"), "unknown field 'colour'"),
    ("unknown nested key", mutate("teacher.temprature", 0.5), "unknown field 'teacher.temprature'"),
    ("missing task", mutate("task", DELETE), "missing field 'task'"),
    ("missing dataset repo", mutate("dataset", {}), "missing field 'dataset.repo_id'"),
    ("wrong type", mutate("generation.samples_per_label", "many"), "generation.samples_per_label"),
    ("negative count", mutate("generation.samples_per_label", -3), "generation.samples_per_label"),
    ("empty labels", mutate("labels", []), "'labels'"),
    ("one label", mutate("labels", [{"name": "a"}]), "'labels'"),
    ("duplicate labels", mutate("labels", [{"name": "a"}, {"name": "a"}]), "duplicate label 'a'"),
    ("unknown language", mutate("languages", ["en", "xx"]), "unknown language code 'xx'"),
    ("bad backend", mutate("teacher.backend", "magic"), "teacher.backend"),
    ("unknown embedded model", mutate("teacher.model", "smollm-9000"), "teacher.model"),
    ("unknown student model", mutate("students", [{"name": "s", "kind": "setfit", "model": "nope"}]),
     "students[0].model"),
    ("unknown student kind", mutate("students", [{"name": "s", "kind": "svm", "model": "all-minilm-l6-v2"}]),
     "students[0].kind"),
    ("student param typo", mutate("students", [{"name": "s", "kind": "setfit", "model": "all-minilm-l6-v2",
                                                 "params": {"num_iteratons": 3}}]),
     "students[0].params.num_iteratons"),
    ("few-shot without seeds", mutate("generation.strategy", "few-shot"), "few-shot needs seeds"),
    ("missing eval file", mutate("evaluation.sets", [{"language": "en", "path": "nope.jsonl"}]),
     "evaluation.sets[0].path"),
    ("eval language not in recipe",
     mutate("evaluation.sets", [{"language": "de", "hub_id": "x/y"}]), "evaluation.sets[0].language"),
    ("eval with two sources",
     mutate("evaluation.sets", [{"language": "en", "hub_id": "x/y", "path": "a.jsonl"}]), "evaluation.sets[0]"),
    ("local backend with base_url", mutate("teacher.base_url", "http://x"), "base_url/provider"),
    ("local backend with api_key_env", mutate("teacher.api_key_env", "MY_KEY"), "base_url/provider/api_key_env"),
    ("api_key_env not a variable name", mutate("teacher", {"backend": "remote", "model": "m", "base_url": "http://x",
                                                           "api_key_env": "$MY KEY"}), "teacher.api_key_env"),
    ("curation min_words > max_words", mutate("curation", {"min_words": 9, "max_words": 4}),
     "field 'curation': min_words (9) is larger than max_words (4)"),
    ("base_url with provider", mutate("teacher", {"backend": "remote", "model": "m", "base_url": "http://x",
                                                  "provider": "auto"}), "base_url (an OpenAI-compatible server)"),
    ("base_url without a scheme", mutate("teacher", {"backend": "remote", "model": "m", "base_url": "localhost:8000"}),
     "base_url must start with http:// or https://"),
    ("few-shot seeds missing a language",
     {**mutate("languages", ["en", "de"]), "generation": {"strategy": "few-shot",
                                                          "seeds": [{"language": "en", "hub_id": "x/y"}]}},
     "field 'generation.seeds': strategy few-shot has no seeds for languages ['de']"),
    ("duplicate student names", mutate("students", [{"name": "s", "kind": "setfit", "model": "all-minilm-l6-v2"}] * 2),
     "field 'students': duplicate student names ['s']"),
    ("invalid dataset repo id", mutate("dataset.repo_id", "a b"), "field 'dataset.repo_id': 'a b' is not a valid"),
    ("organization with a slash", mutate("publish", {"organization": "a/b"}), "field 'publish.organization'"),
    ("huge samples_per_label", mutate("generation.samples_per_label", 10**9), "generation.samples_per_label"),
    ("structured answers in yaml", mutate("generation.structured", "yaml"),
     "field 'generation.structured': Input should be 'none' or 'json'"),
    # Values the schema once let through and a later command died on, after the teacher calls were paid for.
    ("infinite timeout", mutate("teacher.timeout", float("inf")), "field 'teacher.timeout': Input should be a finite"),
    ("infinite CPUs", mutate("execution", {"students": {"num_cpus": float("nan")}}), "execution.students.num_cpus"),
    ("teacher device", mutate("teacher.device", "banana"), "field 'teacher.device': 'banana' is not a device"),
    ("a bool for a count", mutate("generation.samples_per_label", True),
     "field 'generation.samples_per_label': Input should be a valid integer (got True)"),
    ("a text for a number", mutate("teacher.batch_size", "8"), "field 'teacher.batch_size'"),
    ("negative evaluation seed", mutate("evaluation.seed", -1), "field 'evaluation.seed'"),
    ("unknown quality embedder", mutate("quality.embedding_model", "no-such-embedder"),
     "field 'quality.embedding_model': unknown model name 'no-such-embedder'"),
    *[(f"student {param}", mutate("students", [{"name": "s", "kind": kind, "model": model, "params": {param: value}}]),
       f"field 'students[0].params.{param}': {expected}")
      for kind, model, param, value, expected in [
          ("setfit", "all-minilm-l6-v2", "seed", -1, "Input should be greater than or equal to 0"),
          ("setfit", "all-minilm-l6-v2", "device", "banana", "'banana' is not a device"),
          ("setfit", "all-minilm-l6-v2", "max_steps", 0, "max_steps is -1 (train the epochs in full) or"),
          ("encoder", "all-minilm-l6-v2", "max_steps", -2, "max_steps is -1"),
          ("in-context", "smollm2-135m-instruct", "embedding_model", "nope", "unknown model name 'nope'"),
          ("sft", "smollm2-135m-instruct", "target_modules", ["q_proj", "no_such_module"],
           "smollm2-135m-instruct has no module named no_such_module"),
      ]],
]


@pytest.mark.parametrize(("data", "expected"), [(d, e) for _, d, e in BAD], ids=[n for n, _, _ in BAD])
def test_bad_recipe_names_file_and_field(tmp_path: Path, data: dict, expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("name: [unclosed\n", "malformed YAML at line"), ("- just\n- a list\n", "a recipe is a YAML mapping"),
     ("", "a recipe is a YAML mapping")],
)
def test_malformed_yaml(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(RecipeError, match=expected):
        load_recipe(write(tmp_path, text))


def test_a_key_given_twice_is_named_with_its_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(minimal()) + "teacher:\n  model: gemma-3-270m\n  model: smollm2-135m-instruct\n"
    with pytest.raises(RecipeError, match=r"malformed YAML at line \d+, column 1: key 'teacher' is given twice"):
        load_recipe(write(tmp_path, text))


def test_a_data_file_that_is_not_utf8_or_a_link_loop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.jsonl").write_bytes('{"text": "Caf\u00e9 au lait.", "label": "sports"}\n'.encode("latin-1"))
    (tmp_path / "a.jsonl").symlink_to(tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "a.jsonl")
    for name, expected in [("latin1.jsonl", "not UTF-8 text"), ("a.jsonl", "cannot follow a.jsonl")]:
        path = write(tmp_path, mutate("evaluation.sets", [{"language": "en", "path": name}]))
        with pytest.raises(RecipeError) as error:
            load_recipe(path)
        assert "field 'evaluation.sets[0].path'" in str(error.value) and expected in str(error.value)


def test_a_data_file_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    """datasets' cache knows a local file by its path; a file rewritten in place must not give its old rows."""
    from hfsynth.realdata import load_labelled_set
    from hfsynth.recipe.schema import SeedSet

    path = tmp_path / "set.jsonl"
    rows = [{"text": f"Sentence number {index}.", "label": "sports"} for index in range(40)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    seed_set = SeedSet(language="en", path=str(path))
    assert len(load_labelled_set(seed_set, ["sports", "health"])) == 40
    path.write_text('{"text": "Only this one.", "label": "health"}\n')
    assert load_labelled_set(seed_set, ["sports", "health"])["text"] == ["Only this one."]


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "absent.yaml")


def test_eval_paths_resolve_relative_to_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.jsonl").write_text('{"text": "a", "label": "sports"}\n')
    recipe = load_recipe(write(tmp_path, mutate("evaluation.sets", [{"language": "en", "path": "data/test.jsonl"}])))
    assert Path(recipe.evaluation.sets[0].path) == (tmp_path / "data" / "test.jsonl").resolve()
