"""Byte ranges of a file, local or remote, with a count of what was read: the only way check touches weights."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from ..limits import MAX_LINE_VALUES
from .errors import CheckpointError, DimensionMismatchError


@dataclass
class Transfer:
    """Bytes and reads made during one check (mutable, owned by that check)."""

    bytes: int = 0
    reads: int = 0

    def add(self, count: int) -> None:
        self.bytes += count
        self.reads += 1


class ByteSource(Protocol):
    """A file whose size is known and whose byte ranges can be read on demand."""

    name: str
    size: int

    def read(self, offset: int, length: int) -> bytes: ...


@dataclass(frozen=True)
class LocalFile:
    """A file on disk; each read opens, seeks and reads only the range asked for."""

    path: str
    size: int
    transfer: Transfer

    @property
    def name(self) -> str:
        return self.path

    @classmethod
    def open(cls, path: str | os.PathLike[str], transfer: Transfer) -> "LocalFile":
        path = os.fspath(path)
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise CheckpointError(path, f"cannot read it ({exc.strerror or exc})") from None
        return cls(path, size, transfer)

    def read(self, offset: int, length: int) -> bytes:
        check_range(self, offset, length)
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        if len(data) != length:
            raise CheckpointError(
                self.path,
                f"ends at byte {offset + len(data)}, before the {length} bytes asked for at {offset} (truncated?)",
            )
        self.transfer.add(length)
        return data


def check_range(source: ByteSource, offset: int, length: int) -> None:
    """Refuse a range outside the file before anything is allocated for it."""
    if offset < 0 or length < 0 or offset + length > source.size:
        raise CheckpointError(
            source.name,
            f"bytes {offset}..{offset + length} lie past the end of the file ({source.size} bytes): it is "
            "truncated or its header lies",
        )


def check_line_length(file: str, name: str, length: int, longest: int) -> None:
    """Refuse a row longer than the entry's dimensions allow (or MAX_LINE_VALUES), before a byte of it is read."""
    longest = min(longest, MAX_LINE_VALUES)
    if length > longest:
        raise DimensionMismatchError(
            f"{file}: tensor {name!r} has rows of {length:,} values, "
            f"more than the {longest:,} this entry's dimensions allow: "
            "it is not a derivative of that model (or it is a hostile file)"
        )
