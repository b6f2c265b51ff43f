"""Training settings per student kind: what a recipe's ``students[i].params`` may hold, with CPU-sized defaults.

Kept apart from the students themselves (as setfit keeps ``training_args.py`` apart from ``trainer.py``) so that a
recipe is validated without importing setfit, peft or trl (:mod:`hfsynth.recipe.student_kinds` maps kinds to them).
The paper's values are noted where the defaults differ: its students trained on GPUs, ours must finish on two CPU
cores.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hfsynth.recipe.field_types import Device, MaxSteps, Seed


class StudentParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    #: Repeat ``k`` of a student trains with ``seed + k``.
    seed: Seed = 0
    #: "auto": a GPU when present (:func:`hfsynth.language_model.device_and_dtype`).
    device: Device = "auto"


Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class SetFitParams(StudentParams):
    """SetFit: contrastive fine-tuning of a sentence-transformers body on text pairs, then a logistic-regression
    head on its embeddings."""

    #: What contrastive training updates. "full": the whole body (setfit's default). "frozen-embeddings": all but the
    #: token-embedding matrix, which then gets no gradient and no optimizer state: it is most of a multilingual
    #: body's weights (e5-small: 96M of 118M, a 250k-token vocabulary) and a few thousand pairs would only touch the
    #: rows of their own tokens anyway. "none": no contrastive training at all; the pretrained body encodes and only
    #: the head is fitted (the cheapest student). Measured on e5-small, SIB-200 English
    #: (benchmarks/results/setfit_body_training.md): frozen-embeddings has the macro-F1 of full training with 1.3x
    #: faster steps and 40% less peak memory; none scores 0.02 lower and trains 20x faster.
    body_training: Literal["full", "frozen-embeddings", "none"] = "frozen-embeddings"
    #: Pairs per example and epoch (setfit's default is 20, meant for a few examples per label).
    num_iterations: int = Field(5, ge=1)
    num_epochs: int = Field(1, ge=1)
    batch_size: int = Field(16, ge=1)
    body_learning_rate: float = Field(2e-5, gt=0)
    head_learning_rate: float = Field(1e-2, gt=0)
    #: Tokens per text; longer texts are truncated.
    max_length: int = Field(128, ge=8)
    #: -1: all the pairs (2 x num_iterations per example, in batches). Otherwise exactly this many steps.
    max_steps: MaxSteps = -1
    #: A killed run resumes from its last checkpoint, at most this many steps old.
    save_steps: int = Field(100, ge=1)


class SFTParams(StudentParams):
    """LoRA fine-tuning of a small LLM on prompt/completion classification examples (TRL SFTTrainer).

    Paper: r 16, alpha 16, dropout 0.05, lr 3e-5, 600 steps on GPUs. On two CPU cores 600 steps of a 135M model take
    about an hour, so the default runs fewer steps at a higher learning rate (the usual LoRA range).
    """

    r: int = Field(16, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"
    learning_rate: float = Field(2e-4, gt=0)
    max_steps: int = Field(60, ge=1)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    #: Prompt plus label, in tokens; longer examples are truncated (and dropped when the label is cut off).
    max_length: int = Field(512, ge=16)
    save_steps: int = Field(20, ge=1)
    #: Classification prompts are short: recomputing activations would only slow a small model down.
    gradient_checkpointing: bool = False
    #: The base model's weights; "auto": bfloat16 on a GPU or a CPU that computes it natively, else float32.
    dtype: Dtype = "auto"


class InContextParams(StudentParams):
    """A compact LLM shown synthetic examples in its prompt; nothing is trained (paper: 2 examples per label)."""

    examples_per_label: int = Field(2, ge=1)
    selection: Literal["random", "nearest"] = "random"
    #: The sentence-transformers model that finds the nearest examples (``selection: nearest``).
    embedding_model: str = "multilingual-e5-small"
    batch_size: int = Field(8, ge=1)
    dtype: Dtype = "auto"


class EncoderParams(StudentParams):
    """A pretrained encoder with a classification head, fully fine-tuned (paper: XLM-R, lr 1e-5, 50 epochs,
    max length 256); fewer epochs at a higher rate on CPU."""

    num_epochs: float = Field(5, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(128, ge=8)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    #: -1: run the epochs in full.
    max_steps: MaxSteps = -1
    save_steps: int = Field(50, ge=1)
    #: Mixed precision: weights stay float32, bfloat16/float16 computations where "auto" finds them fast.
    dtype: Dtype = "auto"
