"""File checksums: the sha256 of a file, computed once per version of it.

Why one module: an artifact's sha256 is recorded by detect and verify and compared by check (the sha256 rule);
a multi-GB GGUF file hashed by several of them in one process is read once, and a file rewritten in place (a new
size or modification time) is hashed again rather than served a stale checksum.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

CHUNK_BYTES = 1 << 20
"""Bytes read at a time: memory stays flat whatever the file's size."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file (hex), cached by its resolved path, size and modification time."""
    resolved = os.path.realpath(os.fspath(path))
    stat = os.stat(resolved)
    return _sha256(resolved, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime key the cache
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()
