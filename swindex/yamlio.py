"""Safe YAML reading and writing with YAML 1.2 scalars, so a registry file means the same to every reader.

PyYAML follows YAML 1.1, where ``no`` is false, ``012`` is octal, ``1e-6`` is a string and bare dates
become ``datetime`` objects. Registry files are read here with the YAML 1.2 core schema instead, and
anything ambiguous (duplicate keys, anchors and aliases, explicit tags, leading-zero integers,
non-finite numbers, integers too long to be a count, line breaks that git does not count) is rejected
with the file and line, rather than guessed at.
"""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .errors import RegistryFileError
from .limits import MAX_DEPTH

MAX_FILE_BYTES = 1 << 20
MAX_INT_DIGITS = 20
"""Every count or index a registry records fits in 20 digits; a longer integer is refused before Python
converts it (over 4,300 digits that conversion raises, and anything that formats it later may too)."""

_LINE_BREAKS = re.compile("[\u0085\u2028\u2029]|\r(?!\n)")
_BREAK_NAMES = {
    "\u0085": "NEL (U+0085)",
    "\u2028": "LINE SEPARATOR (U+2028)",
    "\u2029": "PARAGRAPH SEPARATOR (U+2029)",
    "\r": "a carriage return (CR) not followed by a line feed",
}

_CORE_RESOLVERS: tuple[tuple[str, re.Pattern[str], Any], ...] = (
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ("~", "n", "N", "")),
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    ("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+0123456789.",
    ),
)

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FAST_DEPTH_LIMIT = 200
_BLOCK_INDICATOR = re.compile(r"(?:^|\s)[-?:](?=\s|$)")
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Yaml12Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Composes nodes only; scalars are resolved with the YAML 1.2 core schema."""

    yaml_implicit_resolvers: dict = {}


for _tag, _pattern, _first in _CORE_RESOLVERS:
    _Yaml12Loader.add_implicit_resolver(_tag, _pattern, list(_first))


class _Yaml12PyLoader(yaml.SafeLoader):
    """The pure-Python composer, whose recursion Python bounds: used when a file might nest deeply."""

    yaml_implicit_resolvers: dict = {}


for _tag, _pattern, _first in _CORE_RESOLVERS:
    _Yaml12PyLoader.add_implicit_resolver(_tag, _pattern, list(_first))


def _nesting_bound(text: str) -> int:
    """An upper bound on how deeply a document can nest, cheap enough to compute before parsing.

    The C composer recurses without a limit and crashes the interpreter on hostile input such as
    50,000 opening brackets, so only documents whose bound is small are given to it.
    """
    brackets = text.count("[") + text.count("{")
    block = 0
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if stripped and not stripped.startswith("#"):
            block = max(block, len(line) - len(stripped) + len(_BLOCK_INDICATOR.findall(stripped)))
    return 2 * brackets + 2 * (block + 1)


class _Yaml12Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """Quotes every string that a YAML 1.1 or a YAML 1.2 reader would take for something else."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


for _tag, _pattern, _first in _CORE_RESOLVERS:
    _Yaml12Dumper.add_implicit_resolver(_tag, _pattern, list(_first))
_Yaml12Dumper.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$"),
    list("yYnNoO"),
)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _LINE_BREAKS.search(
        value
    ):  # written raw these would be refused on reading; double quotes escape them (\L, \P, \N, \r)
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    style = "|" if "\n" in value and len(value) > 80 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Yaml12Dumper.add_representer(str, _represent_str)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def field_name(parts: Iterable[Any]) -> str:
    """``claims[0].row`` from a data path."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Builder:
    """Turns a composed node graph into plain Python data, refusing everything a registry never needs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen: set[int] = set()
        self.lines: dict[tuple[Any, ...], int] = {}

    def fail(self, node: yaml.Node, message: str, where: tuple[Any, ...] = ()) -> RegistryFileError:
        return RegistryFileError(self.path, message, _line(node), field_name(p for p in where if p != "<key>"))

    def build(self, node: yaml.Node, where: tuple[Any, ...] = (), depth: int = 0) -> Any:
        if id(node) in self.seen:
            raise self.fail(
                node, "anchors and aliases (&name / *name) are not allowed in registry files; write the value out"
            )
        self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nesting deeper than {MAX_DEPTH} levels")
        self.lines[where] = _line(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, where, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise self.fail(node, f"tag {node.tag!r} is not allowed; registry files use plain YAML")
            return [self.build(child, (*where, i), depth + 1) for i, child in enumerate(node.value)]
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"unexpected YAML node {type(node).__name__}")
        return self._scalar(node, where)

    def _mapping(self, node: yaml.MappingNode, where: tuple[Any, ...], depth: int) -> dict[str, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            raise self.fail(node, f"tag {node.tag!r} is not allowed; registry files use plain YAML")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (key_node.value == "<<" and key_node.style in ("", None)):
                raise self.fail(key_node, "merge keys (<<) are not allowed in registry files")
            key = self.build(key_node, (*where, "<key>"), depth + 1)
            if not isinstance(key, str):
                raise self.fail(key_node, f"mapping key {key!r} must be a string")
            at = (*where, key)
            if key in result:
                raise self.fail(key_node, f"duplicate key {key!r} (first at line {self.lines[at]})")
            self.lines[at] = _line(key_node)
            result[key] = self.build(value_node, at, depth + 1)
            self.lines[at] = _line(key_node)
        return result

    def _scalar(self, node: yaml.ScalarNode, where: tuple[Any, ...]) -> Any:
        tag, text = node.tag, node.value
        if tag == "tag:yaml.org,2002:str":
            return text
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return text.lower() == "true"
        if tag == "tag:yaml.org,2002:int":
            digits = text.lstrip("+-")
            if len(digits) > MAX_INT_DIGITS:
                raise self.fail(
                    node,
                    f"a number of {len(digits)} digits is too long; registry numbers have at most "
                    f"{MAX_INT_DIGITS} digits",
                    where,
                )
            if len(digits) > 1 and digits.startswith("0") and digits.isdigit():
                raise self.fail(
                    node,
                    f"ambiguous number {text!r}: a leading zero means octal to some readers; write "
                    f"{int(digits)} or quote it",
                )
            if text.startswith(("0o", "0x")):
                raise self.fail(
                    node, f"write {text!r} in decimal ({int(text, 0)}); registry numbers are never octal or hexadecimal"
                )
            return int(text)
        if tag == "tag:yaml.org,2002:float":
            value = float(
                text.replace(".inf", "inf")
                .replace(".Inf", "inf")
                .replace(".INF", "inf")
                .replace(".nan", "nan")
                .replace(".NaN", "nan")
                .replace(".NAN", "nan")
            )
            if not math.isfinite(value):
                raise self.fail(node, f"non-finite number {text!r} is not allowed")
            return value
        raise self.fail(node, f"tag {tag!r} is not allowed; registry files use plain YAML scalars")


def _refuse_tags_and_directives(text: str, path: str, loader: type) -> None:
    """Explicit tags (``!!int "100"``, ``! 100``) and ``%YAML`` directives
    make the file say one thing and mean another."""
    for event in yaml.parse(text, Loader=loader):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise RegistryFileError(
                path, f"explicit tag {tag!r} is not allowed; write the plain value (quote it if it must be text)", line
            )
        if isinstance(event, yaml.DocumentStartEvent) and (event.version is not None or event.tags):
            raise RegistryFileError(
                path, "YAML directives (%YAML, %TAG) are not allowed; registry files are plain YAML 1.2", line
            )


def _field_at(text: str, path: str, line: int) -> str:
    """The field a line belongs to (the last key or item starting at or before it).

    The text is read with the offending breaks made spaces or, if that does not parse (the hidden
    line was a key of its own), with the rest of each such line cut off.
    """
    for readable in (_LINE_BREAKS.sub(" ", text), re.sub(f"(?:{_LINE_BREAKS.pattern}).*", "", text)):
        try:
            _, lines = _parse(readable, path)
        except RegistryFileError:
            continue
        best = max(
            ((at, len(parts), parts) for parts, at in lines.items() if at <= line and "<key>" not in parts),
            default=None,
        )
        return field_name(best[2]) if best else ""
    return ""


def _refuse_hidden_line_breaks(text: str, path: str) -> None:
    """NEL, U+2028, U+2029 and a lone CR end a line for YAML but not for git, grep or a diff,
    so a value can hide on a line of its own."""
    match = _LINE_BREAKS.search(text)
    if match is None:
        return
    line = text.count("\n", 0, match.start()) + 1
    raise RegistryFileError(
        path,
        f"{_BREAK_NAMES[match.group()]} is a line break to YAML but not to git or grep; use a plain "
        "line feed (or a space)",
        line,
        _field_at(text, path, line),
    )


def parse_yaml(text: str, path: str = "<string>") -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse one YAML document; return the data and a map from data path to line number (lines as git counts them)."""
    _refuse_hidden_line_breaks(text, path)
    return _parse(text, path)


def _parse(text: str, path: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    loader = _Yaml12Loader if _nesting_bound(text) <= _FAST_DEPTH_LIMIT else _Yaml12PyLoader
    try:
        if "!" in text or "%" in text:  # only then can a tag or directive be present; most files skip this pass
            _refuse_tags_and_directives(text, path, loader)
        node = yaml.compose(text, Loader=loader)
    except RecursionError:
        raise RegistryFileError(path, f"nesting deeper than {MAX_DEPTH} levels") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise RegistryFileError(path, f"malformed YAML: {exc.problem or exc}", line) from None
    except yaml.YAMLError as exc:
        raise RegistryFileError(path, f"malformed YAML: {exc}") from None
    if node is None:
        return None, {}
    builder = _Builder(path)
    data = builder.build(node)
    return data, builder.lines


def read_text(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """Read a registry file as strict UTF-8, refusing oversized files before reading them whole."""
    path = Path(path)
    try:
        status = path.stat()
    except OSError as exc:
        raise RegistryFileError(path, f"cannot read file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(status.st_mode) and not stat.S_ISDIR(status.st_mode):  # reading a pipe would wait for a writer
        raise RegistryFileError(path, "not a regular file (a pipe, socket or device); registry files are plain files")
    size = status.st_size
    if size > max_bytes:
        raise RegistryFileError(path, f"file is {size} bytes, over the {max_bytes}-byte limit for a registry file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RegistryFileError(
            path, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})", line
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def load_yaml(path: str | Path) -> Any:
    """Load one YAML file safely with YAML 1.2 scalars; errors name the file and line."""
    data, _ = parse_yaml(read_text(path), str(path))
    return data


def load_yaml_with_lines(path: str | Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Like load_yaml, also returning the line of every key and item, for precise error messages."""
    return parse_yaml(read_text(path), str(path))


def dump_yaml(data: Any, header: str | None = None) -> str:
    """Serialise data so that load_yaml reads back exactly the same values, keys in the given order."""
    body = yaml.dump(
        data,
        Dumper=_Yaml12Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
        indent=2,
    )
    if header:
        comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
        return comment + body
    return body
