"""SetFit's ``body_training``: what contrastive training updates, and that frozen weights cost no optimizer state.

Real training on the embedded all-MiniLM-L6-v2 (the same code path as multilingual-e5-small, a smaller vocabulary);
the optimizer is caught through the student's own ``callbacks`` argument, as the pipeline's progress callbacks are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from hfsynth.embedded import resolve_model
from hfsynth.recipe.student_kinds import student_kind
from hfsynth.recipe.student_params import SetFitParams
from hfsynth.students.setfit_student import SetFitStudent
from tests.student_helpers import LABELS, make_recipe, sib200_rows, synthetic_dataset

MODEL = "all-minilm-l6-v2"


class OptimizerCatcher(TrainerCallback):
    """Keeps the optimizer and the sentence-transformers body that setfit's embedding phase trained."""

    def __init__(self) -> None:
        self.optimizer: torch.optim.Optimizer | None = None
        self.body: SentenceTransformer | None = None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer, self.body = kwargs["optimizer"], kwargs["st_model"]


def train(tmp_path: Path, body_training: str) -> tuple[SetFitStudent, OptimizerCatcher]:
    params = SetFitParams(body_training=body_training, num_iterations=1, batch_size=8, max_steps=3, max_length=32,
                          device="cpu")
    student = SetFitStudent(make_recipe(), MODEL, params)
    catcher = OptimizerCatcher()
    student.train(synthetic_dataset(per_label=4)["train"], tmp_path / "checkpoints", callbacks=[catcher])
    return student, catcher


def optimized(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [parameter for group in optimizer.param_groups for parameter in group["params"]]


def pretrained_weights() -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in
            SentenceTransformer(resolve_model(MODEL), device="cpu").state_dict().items()}


def embeddings_name(body: SentenceTransformer) -> str:
    """The token-embedding matrix's parameter name (found by identity: names differ across sentence-transformers)."""
    matrix = body[0].auto_model.get_input_embeddings().weight
    return next(name for name, parameter in body.named_parameters() if parameter is matrix)


def predicts(student: SetFitStudent) -> None:
    rows = sib200_rows("en", "test")[:6]
    probabilities = student.predict_proba([row["text"] for row in rows], ["en"] * len(rows))
    assert probabilities.shape == (6, len(LABELS)) and probabilities.sum(axis=1) == pytest.approx(1.0, abs=1e-5)


def test_frozen_embeddings_get_no_optimizer_state_and_do_not_change(tmp_path: Path) -> None:
    before = pretrained_weights()
    student, catcher = train(tmp_path, "frozen-embeddings")
    assert catcher.optimizer is not None and catcher.body is not None
    parameters = dict(catcher.body.named_parameters())
    name = embeddings_name(catcher.body)
    embeddings = parameters[name]
    assert embeddings.shape[0] > 30_000 and not embeddings.requires_grad  # the vocabulary, frozen
    optimized_ids = {id(parameter) for parameter in optimized(catcher.optimizer)}
    assert id(embeddings) not in optimized_ids and embeddings not in catcher.optimizer.state
    # Everything else trained: in the optimizer, with state after its steps (all but the unused pooler), and changed.
    trainable = [other for other in parameters if other != name]
    assert optimized_ids == {id(parameters[other]) for other in trainable}
    with_state = [other for other in trainable if parameters[other] in catcher.optimizer.state]
    assert len(with_state) > len(trainable) - 3 and all("pooler" in other for other in set(trainable) - set(with_state))
    after = student.model.model_body.state_dict()
    assert torch.equal(after[name], before[name])
    assert sum(not torch.equal(after[other], before[other]) for other in trainable) > len(trainable) / 2
    predicts(student)


def test_full_training_optimizes_the_embeddings_too(tmp_path: Path) -> None:
    before = pretrained_weights()
    student, catcher = train(tmp_path, "full")
    assert catcher.optimizer is not None and catcher.body is not None
    name = embeddings_name(catcher.body)
    embeddings = dict(catcher.body.named_parameters())[name]
    assert embeddings.requires_grad and embeddings in catcher.optimizer.state
    assert not torch.equal(student.model.model_body.state_dict()[name], before[name])


def test_no_body_training_fits_only_the_head(tmp_path: Path) -> None:
    before = pretrained_weights()
    student, catcher = train(tmp_path, "none")
    assert catcher.optimizer is None  # no contrastive phase ran
    after = student.model.model_body.state_dict()
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert list(student.model.model_head.classes_) == [0, 1, 2]
    predicts(student)
    # Saved and loaded like any SetFit student.
    student.save_model(tmp_path / "student")
    assert (tmp_path / "student" / "model_head.pkl").is_file()


def test_body_training_is_validated() -> None:
    assert student_kind("setfit").parse_params({}).body_training == "frozen-embeddings"
    with pytest.raises(ValueError, match="^params.body_training: "):
        student_kind("setfit").parse_params({"body_training": "frozen"})
