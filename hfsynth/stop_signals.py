"""How a command is stopped: Ctrl-C always reaches it, and SIGTERM (how ``kill``, systemd and Kubernetes stop a
process) can end it the way Ctrl-C does, through every ``finally`` and ``with`` on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was, as Ctrl-C's KeyboardInterrupt is (servers such as Gradio's and
    uvicorn's stop on that, and return)."""


def restore_interrupt() -> None:
    """A process started in the background of a non-interactive shell inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler: Ctrl-C, or a supervisor's SIGINT, would never reach the command's own
    clean-up. The command takes Python's default handler back."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def quit_on_next_interrupt(code: int = 130) -> None:
    """After a command has handled Ctrl-C, the interpreter still waits for threads that are finishing (requests in
    flight): another Ctrl-C then ends the process at once, instead of breaking into that wait and printing
    "Exception ignored in: <module 'threading'>" with a traceback."""

    def quit_now(signum: int, frame: FrameType | None) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, quit_now)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[list[int]]:
    """SIGTERM raises :class:`Terminated` in the block (from the main thread; elsewhere nothing changes). The block
    gets a list that holds SIGTERM once it came, for callers whose server swallows the interrupt and returns."""
    received: list[int] = []

    def terminate(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise Terminated

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
