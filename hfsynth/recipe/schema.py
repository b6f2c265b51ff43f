"""Recipes: one YAML file names the task, labels, languages, teacher, generation, curation, students and evaluation.

A recipe is validated into the typed objects below (pydantic, unknown keys forbidden). ``load_recipe`` turns every
validation problem into one :class:`~hfsynth.errors.RecipeError` line naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    SerializeAsAny,
    field_validator,
    model_validator,
)

from hfsynth.languages import is_known_language
from hfsynth.recipe.execution import ExecutionConfig, StrictSection
from hfsynth.recipe.field_types import Device, Seed
from hfsynth.recipe.student_kinds import STUDENT_KINDS, student_kind
from hfsynth.recipe.student_params import StudentParams
from hfsynth.recipe.teacher_costs import Budget, Pricing

#: Upper bounds that keep a typo from planning a run that never ends (the plan is held in memory, one request per
#: call): 100k samples per label and language, 500k teacher calls in a round.
MAX_SAMPLES_PER_LABEL = 100_000
MAX_PLANNED_CALLS = 500_000


class Task(StrictSection):
    name: str = Field(min_length=1, description="Short task name, e.g. 'topic' or 'sentiment'.")
    description: str = Field(min_length=1, description="What is being classified, in one sentence.")
    domain: str = Field("", description="Where texts come from, e.g. 'news sentences' or 'product reviews'.")
    # Li et al. (2023): the more subjective the task, the worse synthetic data does. Stated, not guessed.
    subjectivity: Literal["low", "medium", "high"] = "medium"


class Label(StrictSection):
    name: str = Field(min_length=1)
    description: str = ""


class SamplingParams(StrictSection):
    max_new_tokens: int = Field(200, ge=1, le=8192)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0)


class TeacherConfig(StrictSection):
    backend: Literal["local", "remote"] = "local"
    # An embedded short name (see hfsynth.embedded), a local folder, or a Hub model id.
    model: str = Field(min_length=1)
    # Remote backend: an OpenAI-compatible server (TGI, vLLM, `transformers serve`) or a Hub inference provider.
    # A list of URLs: replicas of one deployment (one server per node); calls are spread over them.
    base_url: str | list[str] | None = None
    provider: str | None = None
    # An environment variable's name: the key of a base_url server (the Hub token goes to Hugging Face hosts only).
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # "auto": chat template when the tokenizer has one, completion-style few-shot prompts otherwise.
    prompt_format: Literal["auto", "chat", "completion"] = "auto"
    device: Device = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(16, ge=1)
    max_concurrency: int = Field(4, ge=1)
    timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    sampling: SamplingParams = SamplingParams()
    pricing: Pricing | None = None
    budget: Budget | None = None

    @model_validator(mode="after")
    def _remote_needs_a_target(self) -> TeacherConfig:
        if self.budget and self.budget.max_cost is not None and self.pricing is None:
            raise ValueError("budget.max_cost needs the teacher's pricing (input_per_million, output_per_million)")
        if self.backend == "local" and (self.base_url or self.provider or self.api_key_env):
            raise ValueError("base_url/provider/api_key_env are only for backend: remote")
        if self.base_url and self.provider:
            raise ValueError("give either base_url (an OpenAI-compatible server) or provider, not both")
        urls = self.base_url if isinstance(self.base_url, list) else [self.base_url] if self.base_url else []
        if isinstance(self.base_url, list) and not urls:
            raise ValueError("base_url: give at least one replica URL")
        if len(set(urls)) != len(urls):
            raise ValueError("base_url: the same replica URL is listed twice")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
        return self


class SeedSet(StrictSection):
    """Real labelled examples: few-shot seeds for generation, or an evaluation set."""

    language: str
    # Exactly one of: a local JSON Lines/CSV/Parquet file (relative to the recipe), or a Hub dataset id.
    path: str | None = None
    hub_id: str | None = None
    config: str | None = None
    split: str = "test"
    text_column: str = "text"
    label_column: str = "label"
    # Maps the set's label names onto the recipe's when they differ; a label mapped to null (None) is dropped with
    # its rows, so a recipe can keep some of a dataset's labels (10 of MASSIVE's 60 intents).
    label_map: dict[str, str | None] = {}
    # For cards (model-index, datasets): the public Hub dataset a local file is a copy of, e.g. "Davlan/sib200".
    dataset_id: str | None = None
    dataset_config: str | None = None

    @property
    def card_dataset_id(self) -> str:
        return self.hub_id or self.dataset_id or Path(self.path or "local").stem

    @property
    def card_dataset_config(self) -> str | None:
        return self.config if self.hub_id else self.dataset_config

    @model_validator(mode="after")
    def _one_source(self) -> SeedSet:
        if (self.path is None) == (self.hub_id is None):
            raise ValueError("give exactly one of path or hub_id")
        return self


class FeedbackValidation(StrictSection):
    # Small real labelled sets the steering student is scored on; empty: evaluation.reference.sets. Never test sets.
    sets: list[SeedSet] = []
    # Real texts per label and language drawn from them (fixed by generation.seed; test and seed texts left out).
    examples_per_label: int = Field(8, ge=1, le=1000)


class FeedbackConfig(StrictSection):
    """Error-driven generation (S3, Wang et al. 2023; ProGen, Ye et al. 2022): after the first pass, each round
    trains a cheap steering student, scores it on real validation texts and asks the teacher for more where it
    fails."""

    rounds: int = Field(3, ge=1, le=20)
    # Extra samples asked of the teacher over all rounds, as a share of the first pass's.
    budget: float = Field(0.5, gt=0.0, le=10.0)
    # errors: S3's extrapolation of misclassified real texts; demonstrations: ProGen's most helpful synthetic
    # examples as in-context demonstrations; both: alternating per call.
    signal: Literal["errors", "demonstrations", "both"] = "errors"
    validation: FeedbackValidation = FeedbackValidation()
    # A setfit student of the recipe, trained head-only (body_training none) to steer; default: the first setfit
    # student, else the quality report's embedding model.
    student: str | None = None
    # Misclassified texts or demonstrations shown per teacher call.
    examples_per_call: int = Field(2, ge=1, le=10)


class GenerationConfig(StrictSection):
    strategy: Literal["zero-shot", "few-shot"] = "zero-shot"
    samples_per_label: int = Field(20, ge=1, le=MAX_SAMPLES_PER_LABEL,
                                   description="Per label and language, before curation.")
    samples_per_call: int = Field(5, ge=1, le=50)
    # json: a chat teacher is asked for a JSON object holding exactly samples_per_call strings, and a remote one gets
    # its JSON schema as response_format (constrained decoding where the server supports it); answers that are not
    # JSON are still read as lines.
    structured: Literal["none", "json"] = "none"
    # Li et al.: every few calls, ask for something different from what came before.
    diversity_every: int = Field(3, ge=0)
    context: str = Field("", description="Scene-setting line, e.g. 'Imagine you are a news editor.'")
    style: str = ""
    min_words: int = Field(5, ge=1)
    max_words: int = Field(40, ge=1)
    # Few-shot: real seed examples shown per call, and where they come from (per language).
    seeds_per_call: int = Field(3, ge=0)
    seeds: list[SeedSet] = []
    seed: Seed = 0
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    # Rounds that ask again for what curation dropped, until each cell has samples_per_label (0: ask once, exactly
    # the plan's samples).
    top_up_rounds: int = Field(2, ge=0, le=5)
    feedback: FeedbackConfig | None = None

    @model_validator(mode="after")
    def _few_shot_needs_seeds(self) -> GenerationConfig:
        if self.strategy == "few-shot" and not self.seeds:
            raise ValueError("strategy few-shot needs seeds (real labelled examples per language)")
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is larger than max_words ({self.max_words})")
        return self


class CurationConfig(StrictSection):
    min_words: int = Field(3, ge=0)
    max_words: int = Field(80, ge=1)
    dedup: bool = True
    # Character 3-gram Jaccard similarity above which two samples count as near duplicates.
    near_duplicate_threshold: float = Field(0.8, gt=0.0, le=1.0)
    remove_seed_copies: bool = True
    language_id: bool = True
    min_language_confidence: float = Field(0.5, ge=0.0, le=1.0)
    # Ask the teacher whether each text fits its label; drop those it assigns elsewhere.
    self_check: bool = False
    # Texts that are the teacher talking about the task ("Here are two sentences...", echoed instructions, a bare
    # label name); a text whose word 3-grams come from the prompt's instructions this often is an echo.
    drop_teacher_chatter: bool = True
    instruction_echo_share: float = Field(0.5, gt=0.0, le=1.0)
    # Texts sharing a word n-gram this long with any real test text leak the test set (case and punctuation ignored).
    drop_test_overlap: bool = True
    test_overlap_ngram: int = Field(8, ge=2)

    @model_validator(mode="after")
    def _word_bounds(self) -> CurationConfig:
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is larger than max_words ({self.max_words}): "
                             "curation would drop every sample")
        return self


class DatasetConfig(StrictSection):
    repo_id: str = Field(min_length=1, description="Where the synthetic dataset is pushed, e.g. 'me/topic-synth'.")
    license: str = "other"
    private: bool = False


class StudentConfig(StrictSection):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # A kind of hfsynth.recipe.student_kinds.
    kind: str
    # An embedded short name, a local folder, or a Hub model id.
    model: str = Field(min_length=1)
    # Kind-specific training settings: the kind's params model (hfsynth.recipe.student_params), parsed once, when the
    # recipe loads, from the mapping the YAML gives.
    params: SerializeAsAny[StudentParams] = StudentParams()
    repo_id: str | None = None
    # Learning curve: train also on these many samples per label (the paper's training-size sweep).
    train_sizes: list[Annotated[int, Field(ge=1, le=MAX_SAMPLES_PER_LABEL // 10)]] = []
    repeats: int = Field(1, ge=1, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _typed_params(cls, data: Any) -> Any:
        """``params`` as the kind's own model (a union keyed on ``kind``, as trl keeps a config beside each trainer)."""
        if not isinstance(data, dict):
            return data
        if data.get("kind") not in STUDENT_KINDS:
            # Params mean nothing without their kind: the unknown kind is the one problem to report.
            return {key: value for key, value in data.items() if key != "params"}
        params, kind = data.get("params", {}), student_kind(data["kind"])
        if not isinstance(params, kind.params):
            data = {**data, "params": kind.parse_params(params)}
        return data

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        student_kind(kind)  # raises ValueError naming the known kinds
        return kind


class ReferenceConfig(StrictSection):
    """Real, human-labelled training data: students trained on it are the reference synthetic data is measured
    against (Pecher et al.: synthetic vs human data per language; Li et al.: the synthetic-real gap per task)."""

    # Same schema as the seed and evaluation sets. Texts shown to the teacher and test texts are never used.
    sets: list[SeedSet] = []
    # The students also trained on the real data (default: every student).
    students: list[str] | None = None
    seed: Seed = 0
    # strict: never a text the teacher may have seen (its few-shot seeds and demonstrations); all: the whole training
    # split, seeds included, as Pecher et al. trained their human-data students. Test texts are never used.
    pool: Literal["strict", "all"] = "strict"


class EvaluationConfig(StrictSection):
    sets: list[SeedSet] = []
    max_samples: int | None = Field(None, ge=1, description="Per language; a fixed random subset, for quick runs.")
    teacher_examples_per_label: int = Field(0, ge=0, description="0: the teacher classifies zero-shot.")
    seed: Seed = 0
    reference: ReferenceConfig = ReferenceConfig()
    # Bootstrap confidence intervals over the test texts (seeded with ``seed``).
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)


class QualityConfig(StrictSection):
    """The synthetic-data quality report (``dataset/quality.json``): diversity, coverage of the real data, label
    fidelity, test-set overlap and teacher chatter."""

    enabled: bool = True
    # Sentence embeddings for semantic diversity, coverage and fidelity. Default: the first SetFit student's body,
    # else all-minilm-l6-v2 for English-only recipes and multilingual-e5-small otherwise.
    embedding_model: str | None = None
    # Cosine distance within which a real test text counts as covered by a synthetic one. Default: calibrated per
    # language as the median distance from a test text to its nearest neighbour in an equal-size real sample.
    coverage_distance: float | None = Field(None, gt=0.0, le=2.0)
    # Who judges whether a text fits its label: a classifier trained on the reference data, or the teacher
    # (classification mode). "auto": the reference classifier when there is reference data, else the teacher.
    label_fidelity: Literal["auto", "reference", "teacher", "off"] = "auto"
    # Real examples per label and language the reference classifier is trained on.
    fidelity_examples_per_label: int = Field(32, ge=2)


class PublishConfig(StrictSection):
    organization: str | None = None
    private: bool = False
    space_repo_id: str | None = None


class Recipe(StrictSection):
    """A whole recipe: the task and labels, the languages, the teacher, generation and curation, the students and
    the evaluation (see ``recipes/`` and the README for every field)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    task: Task
    labels: list[Label] = Field(min_length=2)
    languages: list[str] = Field(min_length=1)
    teacher: TeacherConfig
    generation: GenerationConfig = GenerationConfig()
    curation: CurationConfig = CurationConfig()
    dataset: DatasetConfig
    students: list[StudentConfig] = []
    evaluation: EvaluationConfig = EvaluationConfig()
    quality: QualityConfig = QualityConfig()
    publish: PublishConfig = PublishConfig()
    execution: ExecutionConfig = ExecutionConfig()

    # The YAML text as the user wrote it: written beside artifacts (resolved paths are machine-specific).
    _source_text: str = PrivateAttr("")

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[Label]) -> list[Label]:
        seen: set[str] = set()
        for label in labels:
            if label.name in seen:
                raise ValueError(f"duplicate label {label.name!r}")
            seen.add(label.name)
        return labels

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, languages: list[str]) -> list[str]:
        for code in languages:
            if not is_known_language(code):
                raise ValueError(f"unknown language code {code!r} (use ISO 639-1 or 639-3, e.g. 'en', 'sw', 'swh')")
        if len(set(languages)) != len(languages):
            raise ValueError("duplicate language codes")
        return languages

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        label_names = {label.name for label in self.labels}
        for field, sets in (("generation.seeds", self.generation.seeds), ("evaluation.sets", self.evaluation.sets),
                            ("evaluation.reference.sets", self.evaluation.reference.sets),
                            ("generation.feedback.validation.sets", self.feedback_validation_sets)):
            for index, seed_set in enumerate(sets):
                if seed_set.language not in self.languages:
                    raise ValueError(
                        f"{field}[{index}].language: {seed_set.language!r} is not one of languages {self.languages}"
                    )
                unknown = {value for value in seed_set.label_map.values() if value is not None} - label_names
                if unknown:
                    raise ValueError(f"{field}[{index}].label_map: maps onto unknown labels {sorted(unknown)}")
        if self.generation.strategy == "few-shot":
            seeded = {seed_set.language for seed_set in self.generation.seeds}
            missing = [language for language in self.languages if language not in seeded]
            if missing:
                raise ValueError(f"generation.seeds: strategy few-shot has no seeds for languages {missing}; "
                                 "add a seed set for each, or drop them from languages")
        names = [student.name for student in self.students]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"students: duplicate student names {duplicates}")
        calls = self.planned_calls
        if calls > MAX_PLANNED_CALLS:
            raise ValueError(
                f"generation.samples_per_label: the plan is {calls:,} teacher calls "
                f"({len(self.languages)} language(s) x {len(self.labels)} "
                f"labels x {self.generation.samples_per_label:,} samples_per_label / "
                f"{self.generation.samples_per_call} samples_per_call), more than {MAX_PLANNED_CALLS:,}: "
                "lower samples_per_label or split the recipe")
        unknown_students = set(self.evaluation.reference.students or []) - set(names)
        if unknown_students:
            raise ValueError(f"evaluation.reference.students names no student {sorted(unknown_students)}")
        if self.evaluation.reference.students and not self.evaluation.reference.sets:
            raise ValueError("evaluation.reference.students needs evaluation.reference.sets (real training data)")
        if self.quality.label_fidelity == "reference" and not self.evaluation.reference.sets:
            raise ValueError("quality.label_fidelity 'reference' needs evaluation.reference.sets")
        self.check_feedback()
        return self

    def check_feedback(self) -> None:
        """Feedback's cross-field checks (ValueError 'field: problem'); the test-set guard compares set sources."""
        feedback = self.generation.feedback
        if feedback is None:
            return
        field = "generation.feedback.validation.sets"
        if not self.feedback_validation_sets:
            raise ValueError(f"{field}: feedback needs real labelled validation texts: give sets, or "
                             "evaluation.reference.sets (the default)")
        tests = {(s.path, s.hub_id, s.config, s.split) for s in self.evaluation.sets}
        for index, seed_set in enumerate(self.feedback_validation_sets):
            if (seed_set.path, seed_set.hub_id, seed_set.config, seed_set.split) in tests:
                raise ValueError(f"{field}[{index}]: is one of evaluation.sets: the validation texts steer "
                                 "generation, so the test sets would no longer be unseen")
        setfit = [student.name for student in self.students if student.kind == "setfit"]
        if feedback.student is not None and feedback.student not in setfit:
            raise ValueError(f"generation.feedback.student: {feedback.student!r} is not a setfit student of the "
                             f"recipe (setfit students: {setfit or 'none'}); leave it out for the default")

    @property
    def feedback_validation_sets(self) -> list[SeedSet]:
        """The real sets feedback rounds score the steering student on (none without feedback)."""
        feedback = self.generation.feedback
        if feedback is None:
            return []
        return feedback.validation.sets or self.evaluation.reference.sets

    @property
    def planned_calls(self) -> int:
        """Teacher calls of the first generation round (top-up rounds ask again only for what curation dropped)."""
        per_cell = -(-self.generation.samples_per_label // self.generation.samples_per_call)
        return len(self.languages) * len(self.labels) * per_cell

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def reference_students(self) -> list[StudentConfig]:
        """The students that are also trained on the real reference data (none without reference sets)."""
        reference = self.evaluation.reference
        if not reference.sets:
            return []
        return [student for student in self.students
                if reference.students is None or student.name in reference.students]

    @property
    def source_text(self) -> str:
        return self._source_text or dump_recipe(self)


def dump_recipe(recipe: Recipe) -> str:
    """The recipe as YAML, as written beside every artifact it made."""
    return yaml.safe_dump(recipe.model_dump(mode="json", exclude_defaults=True), sort_keys=False, allow_unicode=True)
