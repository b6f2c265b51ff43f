"""Pytest plugin for the comparison Space's tests: a small real run folder and the Space served from it.

Register with ``pytest_plugins = ["tests.space_fixtures"]`` (one registration, so the session fixtures are built once
for test_space.py and test_space_browser.py together).

The run: the embedded SmolLM2-135M-Instruct as teacher, a SetFit student (embedded all-MiniLM-L6-v2) trained through
hfsynth.students on a few real SIB-200 training sentences per label (seconds on CPU), a second student that was never
trained (its column must show the error while the others work), the SIB-200 English test set for the examples, and
hfsynth.evaluation's eval/ folder for the trained student and the teacher on a few test rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hfsynth.recipe.schema import Recipe

REPO_ROOT = Path(__file__).resolve().parent.parent
SIB200_ENGLISH = REPO_ROOT / "data" / "sib200" / "eng_Latn"
TRAIN_ROWS_PER_LABEL = 4
#: Test rows the evaluation scores (the teacher is the slow part); the Space's examples come from the whole set.
EVAL_ROWS = 7
TRAINED_STUDENT = "setfit-minilm"
UNTRAINED_STUDENT = "never-trained"

RECIPE_YAML = """\
name: space-test
task:
  name: topic
  description: Classify the topic of a sentence from a news or encyclopedia text.
  subjectivity: low
labels:
  - {{name: science/technology}}
  - {{name: travel}}
  - {{name: politics}}
  - {{name: sports}}
  - {{name: health}}
  - {{name: entertainment}}
  - {{name: geography}}
languages: [en]
teacher:
  backend: local
  model: smollm2-135m-instruct
dataset:
  repo_id: space-test-synthetic
students:
  - name: {trained}
    kind: setfit
    model: all-minilm-l6-v2
    repo_id: space-test-setfit
    params: {{num_iterations: 1, max_steps: 3, batch_size: 8}}
  - name: {untrained}
    kind: setfit
    model: all-minilm-l6-v2
evaluation:
  sets:
    - language: en
      path: {test_set}
  max_samples: {eval_rows}
publish:
  organization: hfsynth-org
"""


@dataclass(frozen=True)
class SpaceRun:
    recipe: Recipe
    run_dir: Path


@pytest.fixture(scope="session")
def space_run(tmp_path_factory: pytest.TempPathFactory) -> SpaceRun:
    """A run folder: dataset/recipe.yaml, students/setfit-minilm/ (really trained), eval/."""
    import datasets

    from hfsynth.evaluation import run_evaluation
    from hfsynth.recipes.files import load_recipe
    from hfsynth.training import train_students

    root = tmp_path_factory.mktemp("space-run")
    recipe_path = root / "recipe.yaml"
    recipe_path.write_text(RECIPE_YAML.format(trained=TRAINED_STUDENT, untrained=UNTRAINED_STUDENT,
                                              test_set=SIB200_ENGLISH / "test.jsonl", eval_rows=EVAL_ROWS),
                           encoding="utf-8")
    recipe = load_recipe(recipe_path)
    run_dir = root / "run"
    (run_dir / "dataset").mkdir(parents=True)
    (run_dir / "dataset" / "recipe.yaml").write_text(recipe.source_text, encoding="utf-8")

    rows = [json.loads(line) for line in (SIB200_ENGLISH / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    train = [row for label in recipe.label_names
             for row in [r for r in rows if r["label"] == label][:TRAIN_ROWS_PER_LABEL]]
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=recipe.label_names),
                                  "language": datasets.Value("string")})
    dataset = datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": [row["text"] for row in train], "label": [row["label"] for row in train],
         "language": ["en"] * len(train)}, features=features)})
    train_students(recipe, dataset, run_dir, only=[TRAINED_STUDENT])
    # The evaluation covers the students it can: the untrained one would (rightly) stop it.
    trained_only = [student for student in recipe.students if student.name == TRAINED_STUDENT]
    run_evaluation(recipe.model_copy(update={"students": trained_only}), run_dir)
    return SpaceRun(recipe, run_dir)


@pytest.fixture(scope="session")
def served_space(space_run: SpaceRun) -> Iterator[str]:
    """The Space served from the run by ``hfsynth.space.commands.serve`` in this process; yields its URL."""
    from hfsynth.space.commands import serve

    with pytest.MonkeyPatch.context() as patch:
        # Offline tests: no telemetry from the app or the client.
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        demo = serve(space_run.run_dir, block=False)
        try:
            yield demo.local_url
        finally:
            demo.close()
