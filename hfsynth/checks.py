"""Checks a command runs before it starts work, so that a mistake costs one line, not a traceback an hour in."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path

from hfsynth.errors import HfsynthError


def check_out_dir(out: Path, option: str = "--out") -> None:
    """``out`` must be a folder hfsynth can write into, or a path where one can be created.

    Nothing is created: the nearest existing folder on the way is tried with a temporary file, which catches what
    permission bits do not (read-only file systems, root's permissions, quotas).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HfsynthError(f"{option} {out}: is a file, not a folder: give a folder for the run")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise HfsynthError(f"{option} {out}: cannot create it: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".hfsynth-write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        what = "the folder is not writable" if existing == out else f"cannot create it in {existing}"
        raise HfsynthError(f"{option} {out}: {what} ({reason})") from None
    if existing != out and not os.access(existing, os.W_OK | os.X_OK):
        raise HfsynthError(f"{option} {out}: cannot create it in {existing} (permission denied)")


class PortError(HfsynthError):
    """A host and port the server cannot listen on (in use, not an address of this machine, no permission)."""


def bind_socket(host: str, port: int, listen: bool) -> socket.socket:
    """A socket bound to ``host:port`` (listening with ``listen``), or PortError naming both. Binding before anything
    is announced means that a ready line is printed only for a server that can actually answer."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if listen:  # connections made before uvicorn runs wait in the backlog instead of being refused
            sock.listen(2048)
    except OSError as error:
        sock.close()
        reason = "already in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
        raise PortError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def check_port_free(host: str, port: int) -> None:
    """PortError now, in one line, for a port a server started later (Gradio's) could not listen on."""
    bind_socket(host, port, listen=False).close()
