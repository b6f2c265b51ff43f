"""One served Space's private temporary folder, removed however the server stops (Ctrl-C, SIGTERM, an error).

Batch predictions hold the users' texts: the CSV files the app writes for download and the copies Gradio keeps of
every file it returns (its cache, ``GRADIO_TEMP_DIR``, by default a ``gradio`` folder shared by every Gradio app on
the machine, never emptied). A served Space keeps both in one folder of its own and deletes it when it stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

logger = logging.getLogger(__name__)

GRADIO_CACHE_VARIABLE = "GRADIO_TEMP_DIR"
SESSION_PREFIX = "hfsynth-space-"


class _Terminated(KeyboardInterrupt):
    """SIGTERM, delivered the way Gradio's blocking launch stops on (it closes its server on KeyboardInterrupt,
    and returns: whether SIGTERM came is in ``_received``)."""


_received: list[int] = []


def _terminate(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise _Terminated


@contextlib.contextmanager
def served_session() -> Iterator[Path]:
    """A fresh folder for the app's downloads, with Gradio's cache inside it (unless the user set
    ``GRADIO_TEMP_DIR``: then that folder is theirs to manage); the folder is deleted on the way out, and a SIGTERM
    received meanwhile ends the process with status 143 once it is."""
    root = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX))
    own_cache = GRADIO_CACHE_VARIABLE not in os.environ
    if own_cache:
        os.environ[GRADIO_CACHE_VARIABLE] = str(root / "gradio")  # read when the Blocks and the server are made
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    _received.clear()
    try:
        yield root
    except _Terminated:
        pass  # SIGTERM before Gradio's loop caught it: ends the same way
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        if own_cache:
            os.environ.pop(GRADIO_CACHE_VARIABLE, None)
        shutil.rmtree(root, ignore_errors=True)
        logger.info("removed the Space's temporary folder %s", root)
    if _received:
        raise SystemExit(128 + signal.SIGTERM)
