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
from collections.abc import Iterator
from pathlib import Path

from hfsynth.stop_signals import Terminated, terminate_as_interrupt

logger = logging.getLogger(__name__)

GRADIO_CACHE_VARIABLE = "GRADIO_TEMP_DIR"
SESSION_PREFIX = "hfsynth-space-"


@contextlib.contextmanager
def served_session() -> Iterator[Path]:
    """A fresh folder for the app's downloads, with Gradio's cache inside it (unless the user set
    ``GRADIO_TEMP_DIR``: then that folder is theirs to manage); the folder is deleted on the way out, and a SIGTERM
    received meanwhile ends the process with status 143 once it is."""
    root = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX))
    own_cache = GRADIO_CACHE_VARIABLE not in os.environ
    if own_cache:
        os.environ[GRADIO_CACHE_VARIABLE] = str(root / "gradio")  # read when the Blocks and the server are made
    with terminate_as_interrupt() as received:
        try:
            yield root
        except Terminated:
            pass  # SIGTERM before Gradio's loop caught it: ends the same way
        finally:
            if own_cache:
                os.environ.pop(GRADIO_CACHE_VARIABLE, None)
            shutil.rmtree(root, ignore_errors=True)
            logger.info("removed the Space's temporary folder %s", root)
    if received:
        raise SystemExit(128 + signal.SIGTERM)
