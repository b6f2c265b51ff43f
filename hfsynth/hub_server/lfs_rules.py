"""Which files the loopback Hub sends to large-file storage, as the real Hub decides it at preupload."""

from __future__ import annotations

import fnmatch
from pathlib import PurePosixPath
from typing import Literal

# The real Hub sends files over 10 MB to large-file storage whatever their extension.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

# What a new repo starts with: the Hub's default .gitattributes, which is also where preupload reads LFS patterns.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
        "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle",
        "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite",
        "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
        "*.mp3", "*.ogg", "*.wav", "*.flac", "*.jpg", "*.jpeg", "*.png", "*.webp", "*.gif", "*.mp4",
    )
)  # fmt: skip


def lfs_patterns(gitattributes: str) -> list[str]:
    """The `filter=lfs` patterns of a .gitattributes file."""
    patterns = []
    for line in gitattributes.splitlines():
        pattern, *attributes = line.split() or [""]
        if not pattern.startswith("#") and "filter=lfs" in attributes:
            patterns.append(pattern)
    return patterns


def _matches_gitattributes(pattern: str, path: str) -> bool:
    # gitattributes: a pattern without a slash matches the file name at any depth, one with a slash the whole path.
    if "/" in pattern:
        return fnmatch.fnmatchcase(path, pattern.lstrip("/"))
    return fnmatch.fnmatchcase(PurePosixPath(path).name, pattern)


def choose_upload_mode(path: str, size: int, sample: bytes, patterns: list[str]) -> Literal["lfs", "regular"]:
    """How the real Hub stores a new file: LFS when big, binary (a NUL byte in its first 512 bytes) or listed in
    .gitattributes; empty files always travel as regular files."""
    if size == 0:
        return "regular"
    if size > LFS_SIZE_THRESHOLD or b"\0" in sample:
        return "lfs"
    return "lfs" if any(_matches_gitattributes(pattern, path) for pattern in patterns) else "regular"
