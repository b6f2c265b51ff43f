"""The built wheel on its own: installed into a fresh venv, ``hfsynth space serve`` run from outside the checkout
serves the Space, its templates and entry files coming from the installed package alone.

The fresh venv borrows the test venv's dependencies through a ``.pth`` line (torch and gradio are not installed
twice). A ``.pth`` line puts a folder on sys.path without processing that folder's own ``.pth`` files, so the test
venv's editable install of hfsynth stays inactive there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfsynth.runs.folder import RunFolder

REPO_ROOT = Path(__file__).resolve().parent.parent
#: What the wheel is built from (the rest of the checkout stays out of the copy the build runs in).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "hfsynth", "cards", "spaces")
SERVE_TIMEOUT_S = 240


def _build_wheel(workdir: Path) -> Path:
    source = workdir / "source"
    source.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, source / name)
    # No build isolation: the build uses this venv's setuptools instead of downloading one.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(workdir / "dist"), str(source)], check=True, cwd=workdir)
    [wheel] = (workdir / "dist").glob("hfsynth-*.whl")
    return wheel


def _fresh_venv(workdir: Path, wheel: Path) -> Path:
    env_dir = workdir / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, cwd=workdir, env=_clean_env())
    # Installed first, borrowed second: pip would otherwise find the test venv's hfsynth and keep it.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip()
    (Path(purelib) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def _clean_env() -> dict[str, str]:
    """This process's environment without what would put the checkout on the path."""
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("wheel")
    return _fresh_venv(workdir, _build_wheel(workdir))


@pytest.fixture
def run_folder(tmp_path: Path) -> RunFolder:
    """A run with only its recipe (absolute data paths: the server runs far from the checkout)."""
    run = RunFolder(tmp_path / "run")
    run.dataset.root.mkdir(parents=True)
    test_set = REPO_ROOT / "data" / "sib200" / "eng_Latn" / "test.jsonl"
    run.dataset.recipe.write_text(f"""\
name: wheel-test
task: {{name: topic, description: Classify the topic of a sentence.}}
labels: [{{name: science/technology}}, {{name: travel}}, {{name: politics}}, {{name: sports}}, {{name: health}},
         {{name: entertainment}}, {{name: geography}}]
languages: [en]
teacher: {{backend: local, model: smollm2-135m-instruct}}
dataset: {{repo_id: wheel-test-synthetic}}
students: [{{name: setfit-minilm, kind: setfit, model: all-minilm-l6-v2}}]
evaluation: {{sets: [{{language: en, path: {test_set}}}]}}
""", encoding="utf-8")
    return run


@pytest.fixture
def served(installed: Path, run_folder: RunFolder, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([str(installed / "bin" / "hfsynth"), "space", "serve", "--out", str(run_folder.root),
                                "--port", str(port)], cwd=elsewhere, env=_clean_env(), stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        import httpx

        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"hfsynth space serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer on {url}: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_installed_package_is_the_one_that_runs(installed: Path, tmp_path: Path) -> None:
    probe = ("import hfsynth, hfsynth.space.app, hfsynth.templates, importlib.resources as r; "
             "print(hfsynth.__file__); print(hfsynth.templates.template_path('dataset_card.md')); "
             "print(r.files('hfsynth.space_template').joinpath('app.py'))")
    lines = subprocess.run([str(installed / "bin" / "python"), "-c", probe], check=True, capture_output=True,
                           text=True, cwd=tmp_path, env=_clean_env()).stdout.split()
    assert len(lines) == 3
    for line in lines:
        assert Path(line).is_file() and Path(line).is_relative_to(installed), line


def test_space_serve_from_the_wheel(served: str, run_folder: RunFolder) -> None:
    from gradio_client import Client

    table, message = Client(served, verbose=False).predict(api_name="/results")
    assert table["data"] == [] and "no evaluation results" in message
    # Staged from the package's files: the entry point, its requirements, the card rendered from the templates.
    space = run_folder.space
    assert space.app.read_bytes() == (REPO_ROOT / "spaces" / "compare" / "app.py").read_bytes()
    assert space.requirements.is_file() and "wheel-test: teacher vs students" in space.card.read_text()
