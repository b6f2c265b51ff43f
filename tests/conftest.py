"""Test session set-up. The loopback Hub plugin must come first: it sets HF_ENDPOINT and HF_HUB_DISABLE_XET before
any test module imports huggingface_hub, datasets or transformers (they read both at import time)."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """The CLI's verbosity set-up (run in-process by typer's CliRunner) writes library variables into os.environ;
    keep them out of later tests (what a module-scoped fixture's command sets lasts for its module)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def _logger_levels_at_start() -> dict[str, int]:
    return {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)} | {"": logging.getLogger().level}


@pytest.fixture(autouse=True)
def _restore_logging(_logger_levels_at_start: dict[str, int]) -> Iterator[None]:
    """CLI commands run in-process (typer's CliRunner) set logger levels for the whole process (hfsynth.logs): put
    them back, after each test, to what they were when the session started. (Not to what they were when the test
    started: a module-scoped fixture that ran a command has changed them by then.)"""
    yield
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(_logger_levels_at_start.get(name, logging.NOTSET))
    logging.getLogger().setLevel(_logger_levels_at_start[""])
