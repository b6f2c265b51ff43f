"""Test session set-up. The loopback Hub plugin must come first: it sets HF_ENDPOINT and HF_HUB_DISABLE_XET before
any test module imports huggingface_hub, datasets or transformers (they read both at import time)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

pytest_plugins = [
    "tests.hub_fixtures",
    # A real `transformers serve` process with an embedded model, shared by every module that uses it.
    "tests.serve_fixtures",
    # A small trained run and the comparison Space served on it.
    "tests.space_fixtures",
]

# pyproject.toml maps these packages onto top-level folders. An editable install made from another checkout (a git
# worktree sharing its .venv) maps them onto that checkout's folders: the tests use this checkout's files instead.
# A built wheel is tested apart, in its own venv (tests/test_wheel.py).
_CHECKOUT = Path(__file__).resolve().parent.parent
_MAPPED_PACKAGES = {"hfsynth.card_templates": _CHECKOUT / "cards", "hfsynth.space_template": _CHECKOUT / "spaces" / "compare"}


def _import_from_checkout(package: str, folder: Path) -> None:
    spec = importlib.util.spec_from_file_location(package, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None or not (folder / "__init__.py").is_file():
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    spec.loader.exec_module(module)


for _package, _folder in _MAPPED_PACKAGES.items():
    _import_from_checkout(_package, _folder)
