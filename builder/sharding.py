"""Choosing which models a run handles: --only filters, then --shard K/N splits deterministically.

Sharding is round-robin over the list sorted by case-folded id: shard K (1-based) takes the models at
sorted positions K-1, K-1+N, K-1+2N, ... So every machine computes the same split from the same list
whatever the order of its items, shard sizes differ by at most one, and the N shards together cover
the list exactly once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from swindex.errors import SwindexError

T = TypeVar("T")
_SHARD = re.compile(r"^\s*([0-9]+)\s*/\s*([0-9]+)\s*$")


class SelectionError(SwindexError):
    """--shard or --only asks for something the model list cannot give."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; K counts from 1."""
    match = _SHARD.match(text)
    if not match:
        raise SelectionError(f"--shard {text!r}: write K/N, e.g. 1/4 (K from 1 to N)")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise SelectionError(f"--shard {text!r}: K must be between 1 and N, and N at least 1")
    return k, n


def shard(items: Sequence[T], k: int, n: int, key: Callable[[T], str] = lambda item: item.id) -> list[T]:
    """The K-th of N round-robin shards of items sorted by case-folded id (stable, order-independent)."""
    ordered = sorted(items, key=lambda item: (key(item).casefold(), key(item)))
    return ordered[k - 1 :: n]


def only(items: Sequence[T], ids: Iterable[str], key: Callable[[T], str] = lambda item: item.id) -> list[T]:
    """Items whose id is one of ids (case-insensitive), in list order; unknown ids are an error naming the nearest."""
    wanted = {i.casefold(): i for i in ids}
    known = {key(item).casefold() for item in items}
    missing = [original for folded, original in wanted.items() if folded not in known]
    if missing:
        names = [key(item) for item in items]
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise SelectionError(f"--only: not in the model list: {', '.join(hints)}")
    return [item for item in items if key(item).casefold() in wanted]
