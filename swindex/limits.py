"""How much swindex reads from files and servers it does not control, and how long it waits for them.

Why one home: every reader of outside input (checkpoint headers, config.json, shard indexes, model cards,
the update dump, replies from a Hub or the site) needs the same few bounds, so a hostile or broken input ends
in one line naming it, within a deadline and well under 512 MB, instead of a traceback, a hang or a
memory blow-up. The JSON and YAML parsing that enforces the nesting and number bounds lives here too.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import SwindexError

# Parsing JSON and YAML from outside.
MAX_DEPTH = 32
"""Deepest nesting accepted in JSON or YAML from a file, a server or the registry (real ones nest under 10)."""
MAX_INT_DIGITS = 100
"""Longest integer accepted (Python refuses to convert over 4,300 digits; nothing swindex reads needs 100)."""
MAX_CONTAINERS = 1_000_000
"""Most arrays and objects one JSON document may hold, counted before parsing (each costs about 64 bytes)."""
MAX_SMALL_FILE_BYTES = 20_000_000
"""config.json, a shard index or a model card is read whole only up to this size."""

# Checkpoints.
MAX_HEADER_BYTES = 16 << 20
"""Largest safetensors header read (about 150,000 tensors; the safetensors library allows 100 MB)."""
MAX_TENSORS = 150_000
"""Most tensors one safetensors header or GGUF file may list: real files list under 50,000, and this many cost
about 300 MB once parsed, within the 512 MB any input may take."""
MAX_LINE_VALUES = 1 << 18
"""Longest row check reads (262,144 values, 2 MiB as float64; the widest real FFN has about 74,000)."""
LINE_SLACK = 4
"""A row may be this many times the entry's widest recorded dimension (shared experts can be wider than
``intermediate_size``); a longer one contradicts the entry and is refused before it is read."""
MAX_GGUF_ARRAY_ITEMS = 1 << 22
"""Longest GGUF metadata array stepped over (tokenizer vocabularies and merges hold under a million)."""
MAX_GGUF_NESTING = 4
"""Deepest GGUF array of arrays (llama.cpp itself reads none)."""

# Network.
REQUEST_DEADLINE_S = 60.0
"""Longest one request to a Hub may take, start to last byte; a server that drips bytes is cut off."""
UPDATE_DEADLINE_S = 30.0
"""Longest `swindex update`'s download may take, start to last byte."""
MAX_REPLY_BYTES = 8 << 20
"""Most bytes read from a model-info reply or an error body, counted after decompression (gzip bombs)."""
MAX_DUMP_BYTES = 16 << 20
"""Most bytes read from the site's registry dump, counted after decompression."""
MAX_DUMP_ENTRIES = 10_000
"""Most entries a dump may hold (the registry holds under a hundred)."""
MAX_PROBLEMS = 20
"""Problems kept and printed for a refused dump; the rest are counted."""
MAX_REDIRECTS = 5
"""Redirects followed per request, each hop checked (https, or plain http only to this machine)."""


class ParseError(SwindexError):
    """Outside JSON or YAML that cannot be read safely; callers re-raise it as their own error for ``where``."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits:,} digits (more than {MAX_INT_DIGITS})")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def load_json(data: bytes | str, where: str, *, unique_keys: bool = False) -> Any:
    """JSON from outside, within MAX_DEPTH, MAX_INT_DIGITS and MAX_CONTAINERS; ParseError says what broke."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    try:
        data = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(where, f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start:,})") from None
    containers = raw.count(b"[") + raw.count(b"{")
    if containers > MAX_CONTAINERS:
        raise ParseError(
            where, f"holds {containers:,} brackets, more than the {MAX_CONTAINERS:,} arrays and objects accepted"
        )
    try:
        value = json.loads(data, parse_int=_bounded_int, object_pairs_hook=_unique_keys if unique_keys else None)
    except RecursionError:
        raise ParseError(where, f"nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise ParseError(where, f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:
        raise ParseError(where, f"is not valid JSON ({exc})") from None
    if containers > MAX_DEPTH and _nests_deeper(raw, MAX_DEPTH):  # fewer brackets cannot nest past the limit
        raise ParseError(where, f"nests deeper than {MAX_DEPTH} levels")
    return value


_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')
_STRINGS = re.compile(rb'"[^"]*"')  # once escapes are gone, a string runs to the next quote
_INNERMOST = re.compile(rb"\[\]|\{\}")  # one pass removes one level: what it leaves is not rescanned


def _nests_deeper(raw: bytes, limit: int) -> bool:
    """Whether parsed JSON text nests deeper than ``limit``, from its brackets alone: escapes and the strings'
    contents are dropped, then innermost pairs are removed once per level (C-speed steps; a Python walk over
    the parsed containers took seconds for a 250,000-tensor header)."""
    bare = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    brackets = _STRINGS.sub(b"", bare)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = _INNERMOST.sub(b"", brackets)
    return bool(brackets)


def check_depth(value: Any, where: str) -> None:
    """Refuse data nested deeper than MAX_DEPTH (walked without recursion, each container once)."""
    stack = [(value, 1)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if depth > MAX_DEPTH:
            raise ParseError(where, f"nests deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def load_yaml_text(text: str, where: str) -> Any:
    """YAML from outside (a model card's front matter): no aliases (billion laughs), within MAX_DEPTH and digits."""
    import yaml

    class Loader(yaml.SafeLoader):  # the pure-Python composer: its recursion Python bounds, where the C one crashes
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("aliases (*name) are not read from outside files")
            return super().compose_node(parent, index)

        def construct_yaml_int(self, node: Any) -> Any:
            if len(str(node.value)) > MAX_INT_DIGITS:
                raise ValueError(
                    f"an integer of {len(str(node.value)):,} characters (more than {MAX_INT_DIGITS} digits)"
                )
            return super().construct_yaml_int(node)

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    try:
        value = yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ParseError(where, f"nests deeper than {MAX_DEPTH} levels") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise ParseError(
            where, f"is not YAML swindex reads ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    check_depth(value, where)
    return value


def longest_row(dimensions: Any) -> int:
    """The longest row check reads for an entry: LINE_SLACK times its widest ``*_size``, within MAX_LINE_VALUES."""
    sizes = [v for k, v in dict(dimensions or {}).items() if str(k).endswith("_size") and type(v) is int and v > 0]
    return min(LINE_SLACK * max(sizes), MAX_LINE_VALUES) if sizes else MAX_LINE_VALUES


def allowed_url(url: str, previous: str | None = None) -> bool:
    """Whether swindex may fetch ``url``: https, plain http only to this machine, or a hop that keeps the previous
    hop's own scheme and host (so a redirect never downgrades a request to plain http on the network)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if _is_loopback(parts.hostname):
        return True
    before = urlsplit(previous) if previous else None
    return before is not None and (before.scheme, before.hostname, before.port) == ("http", parts.hostname, parts.port)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def cut_off_at(deadline: float, fileno: int | None) -> Iterator[None]:
    """Shut the connection on ``fileno`` down when ``deadline`` (a ``time.monotonic()``) passes, so a read blocked
    on a server that drips bytes ends then, not one read timeout later. Shutting a duplicate of the descriptor
    down ends the connection for every reader of it, and closing the duplicate leaves the original to its owner."""
    if fileno is None or fileno < 0:
        yield
        return

    def cut() -> None:
        try:
            with socket.socket(fileno=os.dup(fileno)) as duplicate:
                duplicate.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the request ended on its own

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
