"""Checks that a registry entry is well formed: the JSON Schema first, then the rules no schema can express."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RegistryFileError
from .records import format_coordinate
from .schema import entry_validator
from .yamlio import load_yaml_with_lines

_HTML = re.compile(r"<\s*[A-Za-z!/?]")
_LAYER_IN_TENSOR = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")
# Architectures that store a down projection input-major: GPT-2's Conv1D family and fused experts marked is_transposed.
TRANSPOSED_ARCHITECTURES = ("GPT2", "ImageGPT", "DecisionTransformer", "OpenAIGPT", "Clvp", "GptOss", "Aria", "OpenAIPrivacyFilter")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one entry, located as precisely as we can: file, line and field."""

    path: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field or '(entry)'}: {self.message}"


def field_name(parts: Iterable[Any]) -> str:
    """``super_weights[0].row`` from a data path."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_for(lines: Mapping[tuple[Any, ...], int], parts: tuple[Any, ...]) -> int | None:
    while True:
        if parts in lines:
            return lines[parts]
        if not parts:
            return None
        parts = parts[:-1]


def _strings(data: Any, where: tuple[Any, ...] = ()) -> Iterable[tuple[tuple[Any, ...], str]]:
    if isinstance(data, str):
        yield where, data
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from _strings(value, (*where, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, (*where, i))


def _is_real_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _semantic_problems(data: Mapping[str, Any]) -> Iterable[tuple[tuple[Any, ...], str]]:
    for where, text in _strings(data):
        if _HTML.search(text):
            yield where, "HTML markup is not allowed in registry text; write plain text (use words for < and >)"
        if where and where[-1] == "url" and not text.startswith("https://"):
            yield where, "only https:// URLs are allowed"

    for where, text in _strings(data):
        if where and where[-1] in ("date", "modified") and not _is_real_date(text):
            yield where, f"{text} is not a date in the calendar; write YYYY-MM-DD"

    dims = data.get("dimensions") or {}
    architecture = data.get("architecture") or ""
    transposed_layout = architecture.startswith(TRANSPOSED_ARCHITECTURES)
    coordinates: dict[str, int] = {}
    for i, sw in enumerate(data.get("super_weights") or []):
        at = ("super_weights", i)
        layer, tensor, row, column, expert, index = (sw.get(k) for k in ("layer", "tensor", "row", "column", "expert", "index"))
        match = _LAYER_IN_TENSOR.search(tensor)
        if match is None or int(match.group(1)) != layer:
            yield (*at, "tensor"), f"tensor {tensor!r} does not belong to layer {layer}; the first number in the name must be the layer"
        if len(index) == 3:
            if expert is None or index[0] != expert:
                yield (*at, "index"), f"a 3-D index [expert, ...] needs expert = {index[0]}, found {expert}"
            pair = list(index[1:])
        else:
            pair = list(index)
        if pair not in ([row, column], [column, row]):
            yield (*at, "index"), f"index {index} does not hold row {row} and column {column}"
        elif pair != [row, column] and not transposed_layout:
            expected = [*index[:-2], row, column]
            yield (*at, "index"), (
                f"index {index} is in [column, row] order, but a {architecture} down projection is stored [row, column]: "
                f"write {expected} (only {', '.join(TRANSPOSED_ARCHITECTURES)} architectures store it transposed)"
            )
        coordinate = format_coordinate(tensor, index)
        if coordinate in coordinates:
            yield at, f"duplicate coordinate {coordinate} (also super_weights[{coordinates[coordinate]}]); merge the sources into one claim"
        coordinates.setdefault(coordinate, i)
        limits = (
            ("layer", layer, dims.get("num_layers")),
            ("row", row, dims.get("hidden_size")),
            ("column", column, dims.get("moe_intermediate_size") if expert is not None and dims.get("moe_intermediate_size") else dims.get("intermediate_size")),
            ("expert", expert, dims.get("num_experts")),
        )
        for name, value, limit in limits:
            if value is not None and limit and value >= limit:
                yield (*at, name), f"{name} {value} is outside the model (dimensions give {limit})"

    for i, finding in enumerate(data.get("other_findings") or []):
        for name, limit in (("layer", dims.get("num_layers")), ("row", dims.get("hidden_size")), ("expert", dims.get("num_experts"))):
            value = finding.get(name)
            if value is not None and limit and value >= limit:
                yield ("other_findings", i, name), f"{name} {value} is outside the model (dimensions give {limit})"

    named = set()
    for i, disagreement in enumerate(data.get("disagreements") or []):
        for j, claim in enumerate(disagreement.get("claims") or []):
            named.add(claim)
            if claim not in coordinates:
                yield ("disagreements", i, "claims", j), f"{claim} is not one of this entry's super_weights coordinates"
    for coordinate, i in coordinates.items():
        yield from _status_problems(data["super_weights"][i], ("super_weights", i), coordinate in named)


_FIRST_HAND = ("reported", "detected", "ablation")


def _status_problems(claim: Mapping[str, Any], at: tuple[Any, ...], disputed_somewhere: bool) -> Iterable[tuple[tuple[Any, ...], str]]:
    """A claim's status must be backed by its sources: the status is a summary of them, not an opinion."""
    status, sources = claim.get("status"), claim.get("sources") or []
    first_hand = [s for s in sources if s.get("evidence") in _FIRST_HAND]
    if status == "confirmed" and len(first_hand) < 2:
        yield (*at, "status"), (
            f"'confirmed' needs at least two sources that reported, detected or ablated it; this claim has {len(first_hand)}: "
            "use 'reported' until someone reproduces it"
        )
    elif status == "reported" and not first_hand:
        yield (*at, "status"), "'reported' needs a source that reported, detected or ablated it; a claim only copied or assumed is 'unverified'"
    elif status == "detected" and not any(s.get("kind") == "swindex" for s in sources):
        yield (*at, "status"), "'detected' means found by swindex's detector, so it needs a source of kind 'swindex'; a published claim is 'reported'"
    elif status == "disputed" and not disputed_somewhere:
        yield (*at, "status"), "a 'disputed' claim must be named in the entry's disagreements, which say who disagrees and why"


def validate_entry_dict(data: Any, path: str | Path | None = None, lines: Mapping[tuple[Any, ...], int] | None = None) -> list["Problem"]:
    """Every problem with one entry: schema violations first, then cross-field rules (only if the schema passes)."""
    where = str(path) if path is not None else "<entry>"
    lines = lines or {}
    if not isinstance(data, Mapping):
        return [Problem(where, "", f"an entry must be a mapping of fields, found {type(data).__name__}", 1 if lines else None)]
    problems = []
    for error in sorted(entry_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        parts = tuple(error.absolute_path)
        message = error.message
        if parts == ("id",) and error.validator in ("pattern", "not"):
            message = f"{error.instance!r} is not a model id: write org/name (letters, digits, '-', '_', '.'; no '..', no leading '/')"
        elif error.validator == "additionalProperties":
            message = f"{message}; see the schema for the allowed fields"
        elif len(message) > 300:
            message = message[:300] + "..."
        problems.append(Problem(where, field_name(parts), message, _line_for(lines, parts)))
    if problems:
        return problems
    for parts, message in _semantic_problems(data):
        problems.append(Problem(where, field_name(parts), message, _line_for(lines, parts)))
    return problems


def expected_id(path: Path, root: Path) -> str | None:
    """The model id a file's location implies: registry/<org>/<name>.yaml -> org/name."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return relative.with_suffix("").as_posix()


def entry_files(root: str | Path) -> list[Path]:
    """Every entry file under a registry directory, in a stable order."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml") and not p.name.startswith("."))


def check_file(path: Path, root: Path | None = None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Load and validate one file; returns the data (None if unreadable) and its problems."""
    data, problems, _ = _check_file(path, root)
    return data, problems


def _check_file(path: Path, root: Path | None = None) -> tuple[dict[str, Any] | None, list[Problem], Mapping[tuple[Any, ...], int]]:
    try:
        data, lines = load_yaml_with_lines(path)
    except RegistryFileError as exc:
        return None, [Problem(exc.path, "", exc.reason, exc.line)], {}
    problems = validate_entry_dict(data, path, lines)
    if path.suffix != ".yaml":
        problems.append(Problem(str(path), "", "registry files end in .yaml"))
    if root is not None and isinstance(data, Mapping) and isinstance(data.get("id"), str):
        expected = expected_id(path, root)
        if expected is not None and expected != data["id"]:
            problems.append(Problem(str(path), "id", f"id {data['id']!r} does not match the file's location, which implies {expected!r}; move the file to {root}/{data['id']}.yaml", lines.get(("id",))))
    return (data if isinstance(data, Mapping) else None), problems, lines


def cross_file_problems(
    loaded: list[tuple[Path, Mapping[str, Any]]], lines: Mapping[Path, Mapping[tuple[Any, ...], int]] | None = None
) -> list[Problem]:
    """Ids and aliases must each name exactly one model across the whole registry (case-insensitively).

    The first file in ``loaded`` to use a name owns it, so list files already in the registry before the
    files under review: the problem is then reported on the file that introduced the clash, at its line.
    """
    owners: dict[str, tuple[str, Path]] = {}
    problems = []
    lines = lines or {}
    for path, data in loaded:
        names = [(("id",), data.get("id"))] + [(("aliases", i), a) for i, a in enumerate(data.get("aliases") or [])]
        local: set[str] = set()
        for parts, name in names:
            if not isinstance(name, str):
                continue
            key = name.casefold()
            if key in local:
                continue
            local.add(key)
            field = field_name(parts)
            if key in owners and owners[key][1] != path:
                other_field, other_path = owners[key]
                problems.append(
                    Problem(
                        str(path), field, f"{name!r} already names another model ({other_path}, {other_field}); ids and aliases must be unique",
                        _line_for(lines.get(path, {}), parts),
                    )
                )
            else:
                owners.setdefault(key, (field, path))
    return problems


def validate_paths(paths: Iterable[str | Path], registry: str | Path | None = None) -> list[Problem]:
    """Validate files and directories; cross-file uniqueness is checked over the registry and the given files together."""
    root = Path(registry) if registry is not None else None
    targets: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            targets.extend(entry_files(p))
        elif p.is_file():
            targets.append(p)
        else:
            problems.append(Problem(str(p), "", "no such file or directory"))
    reviewed: list[tuple[Path, Mapping[str, Any]]] = []
    lines: dict[Path, Mapping[tuple[Any, ...], int]] = {}
    seen: set[Path] = set()
    for path in targets:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        file_root = root if root is not None and expected_id(path, root) is not None else None
        data, file_problems, lines[path] = _check_file(path, file_root)
        problems.extend(file_problems)
        if data is not None:
            reviewed.append((path, data))
    others: list[tuple[Path, Mapping[str, Any]]] = []
    if root is not None and root.is_dir():
        for path in entry_files(root):
            if path.resolve() not in seen:
                data, _ = check_file(path)
                if data is not None:
                    others.append((path, data))
    problems.extend(cross_file_problems(others + reviewed, lines))
    return problems



def validate_registry(root: str | Path) -> list[Problem]:
    """Every problem in a registry directory (an empty list means it is valid)."""
    root = Path(root)
    if not root.is_dir():
        return [Problem(str(root), "", "registry directory not found")]
    return validate_paths([root], registry=root)
