"""How much a run prints: hfsynth's own progress and tables always; library warnings, logs and progress bars only
when asked for.

Three levels, from ``hfsynth -v``/``-vv`` or ``HFSYNTH_VERBOSITY`` (``warning``/``quiet``, ``info``, ``debug``, or
``0``/``1``/``2``; the command line wins):

- 0, the default: hfsynth's own warnings and errors; other libraries' only from ERROR up; no library progress bars.
- 1 (``-v``): INFO from hfsynth and the model libraries, their warnings (``warnings`` module included) and their
  progress bars.
- 2 (``-vv``): everything down to DEBUG.

Libraries are set with their own switches: ``transformers``, ``setfit``, ``datasets`` and ``huggingface_hub`` have
verbosity and progress-bar functions, which are called for those already imported; those not imported yet (the CLI
imports them lazily) read the matching environment variables when they are (``TRANSFORMERS_VERBOSITY``,
``DATASETS_VERBOSITY``, ``HF_HUB_VERBOSITY``, ``HF_HUB_DISABLE_PROGRESS_BARS``, ``HF_DATASETS_DISABLE_PROGRESS_BARS``,
``TQDM_DISABLE``); a variable the user set is left as it is. The other libraries (sentence-transformers, trl, peft,
accelerate, torch, httpx) log through the standard ``logging`` tree and ``warnings`` are captured into it
(``logging.captureWarnings``), so one handler on the root logger decides what reaches stderr.

setfit sets its own logger to INFO when it is imported; :func:`apply_to_loaded_libraries` puts it back, and runs
again at the start of each training (:func:`hfsynth.reproducibility.training_context`). transformers' Trainer prints
its logs with ``print``/``tqdm.write`` (stdout); :func:`quiet_trainer` removes those callbacks from a Trainer.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

ENV_VARIABLE = "HFSYNTH_VERBOSITY"
QUIET, INFO, DEBUG = 0, 1, 2
_NAMES = {"quiet": QUIET, "warning": QUIET, "warn": QUIET, "error": QUIET, "0": QUIET,
          "info": INFO, "verbose": INFO, "1": INFO, "debug": DEBUG, "2": DEBUG}
#: Libraries whose loggers are turned down by default (their children follow them).
LIBRARIES = ("transformers", "setfit", "datasets", "huggingface_hub", "sentence_transformers", "trl", "peft",
             "accelerate", "torch", "httpx", "httpx2", "httpcore", "httpcore2", "urllib3", "filelock", "fsspec",
             "gradio", "matplotlib", "PIL", "py.warnings")
#: Per level: (hfsynth's own threshold, everyone else's threshold).
_THRESHOLDS = {QUIET: (logging.WARNING, logging.ERROR), INFO: (logging.INFO, logging.INFO),
               DEBUG: (logging.DEBUG, logging.DEBUG)}
_LIBRARY_LEVEL_NAMES = {QUIET: "error", INFO: "info", DEBUG: "debug"}

_state: dict[str, Any] = {"level": None, "handler": None}


def parse_verbosity(value: str | None) -> int | None:
    """``HFSYNTH_VERBOSITY``'s value as a level; ``None`` when unset. Unknown values raise ValueError."""
    if value is None or not value.strip():
        return None
    try:
        return _NAMES[value.strip().lower()]
    except KeyError:
        raise ValueError(f"{ENV_VARIABLE}={value!r}: use quiet, info or debug (or 0, 1, 2)") from None


def verbosity() -> int:
    """The level in force (the default until :func:`configure` runs)."""
    level = _state["level"]
    return QUIET if level is None else level


class _Gate(logging.Filter):
    """hfsynth's records from its own threshold up, everyone else's from theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        own, others = _THRESHOLDS[verbosity()]
        is_own = record.name == "hfsynth" or record.name.startswith("hfsynth.")
        return record.levelno >= (own if is_own else others)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}.get(
            record.levelno, "")
        if record.name == "py.warnings":
            # "path:line: Category: message\n  source line": the first line says it all.
            message = message.strip().splitlines()[0] if message.strip() else message
            prefix = ""
        library = "warnings" if record.name == "py.warnings" else record.name.split(".")[0]
        source = "" if library == "hfsynth" else f"[{library}] "
        text = f"{source}{prefix}{message}"
        if record.exc_info and verbosity() >= DEBUG:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(verbose: int | None = None) -> int:
    """Set the level (``verbose``: the count of ``-v``; ``None``: from ``HFSYNTH_VERBOSITY``, else quiet).

    Safe to call again (each call replaces the previous set-up). Returns the level in force.
    """
    level = min(verbose, DEBUG) if verbose else None
    if level is None:
        level = parse_verbosity(os.environ.get(ENV_VARIABLE))
    level = QUIET if level is None else level
    _state["level"] = level

    root = logging.getLogger()
    if _state["handler"] is None:
        handler = logging.StreamHandler()  # stderr, looked up when each record is written
        handler.addFilter(_Gate())
        handler.setFormatter(_Formatter())
        root.addHandler(handler)
        _state["handler"] = handler
    # The root level also decides sentence-transformers' encode() progress bar (shown at INFO and DEBUG).
    root.setLevel({QUIET: logging.WARNING, INFO: logging.INFO, DEBUG: logging.DEBUG}[level])
    logging.getLogger("hfsynth").setLevel(_THRESHOLDS[level][0])
    others = _THRESHOLDS[level][1]
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(others)
    logging.captureWarnings(True)

    _set_environment(level)
    apply_to_loaded_libraries()
    return level


def _set_environment(level: int) -> None:
    """For libraries not imported yet: the variables they read on import (never overriding the user's own)."""
    name = _LIBRARY_LEVEL_NAMES[level]
    quiet = "1" if level == QUIET else "0"
    wanted = {"TRANSFORMERS_VERBOSITY": name, "DATASETS_VERBOSITY": name, "HF_HUB_VERBOSITY": name}
    if "huggingface_hub" not in sys.modules:
        wanted["HF_HUB_DISABLE_PROGRESS_BARS"] = quiet
    if "datasets" not in sys.modules:
        wanted["HF_DATASETS_DISABLE_PROGRESS_BARS"] = quiet
    if level == QUIET and "tqdm" not in sys.modules:
        # tqdm reads TQDM_* once, on import, as defaults of its arguments: raw bars (Trainer's, setfit's) stay off.
        # Only ever "1": tqdm turns any non-empty value into True.
        wanted["TQDM_DISABLE"] = "1"
    for variable, value in wanted.items():
        if variable not in _state.setdefault("ours", {}) and variable in os.environ:
            continue  # the user's own setting
        os.environ[variable] = value
        _state["ours"][variable] = value


def apply_to_loaded_libraries() -> None:
    """Put the libraries that are imported already at the level in force (cheap: touches only sys.modules)."""
    level = verbosity()
    library_level = _THRESHOLDS[level][1]
    bars = level >= INFO
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity(library_level)
        transformers_logging.enable_progress_bar() if bars else transformers_logging.disable_progress_bar()
    if "setfit" in sys.modules:
        from setfit import logging as setfit_logging

        setfit_logging.set_verbosity(library_level)
        setfit_logging.enable_progress_bar() if bars else setfit_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.logging.set_verbosity(library_level)
        datasets.enable_progress_bars() if bars else datasets.disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        hub_utils.logging.set_verbosity(library_level)
        hub_utils.enable_progress_bars() if bars else hub_utils.disable_progress_bars()
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(library_level)


def quiet_trainer(trainer: Any) -> Any:
    """At the default level, stop a transformers ``Trainer`` printing to stdout: its ``ProgressCallback`` (a tqdm bar
    that also writes every log dict) or ``PrinterCallback`` (``print`` of every log dict). With ``-v`` it is left as
    it is. Returns the trainer."""
    if verbosity() >= INFO:
        return trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    return trainer
