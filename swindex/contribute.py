"""The contributor's path: a skeleton entry to start from, and filling in what follows from an entry's own data.

Why: the verdict, an unmeasured impact and a status are consequences of the claims and their sources
(``swindex.claims``), so a contributor should never have to compute them by hand. ``fill`` writes only
what is missing or derived (never a judgement a person made, such as ``disputed``), and ``fix_file``
rewrites a file atomically, refusing when the rewrite would drop a comment.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .claims import derive_verdict, status_from_sources, verdict_of
from .errors import RegistryFileError, SwindexError, shown
from .records import SCHEMA_VERSION, Source
from .yamlio import dump_yaml, load_yaml, read_text

SCHEMA_HEADER = "yaml-language-server: $schema=../../swindex/data/entry.schema.json"
"""The first line of every registry file: editors then check the entry against the schema as it is typed."""
_UNMEASURED = {"classification": "unmeasured"}


def skeleton(model_id: str, architecture: str, today: str, family: str | None = None) -> dict[str, Any]:
    """The smallest valid entry for a model: no claims yet, so nothing measured."""
    entry: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "id": model_id, "architecture": architecture}
    if family:
        entry["family"] = family
    entry.update({"modified": today, "verdict": {"outcome": "not_measured"}, "claims": []})
    return entry


def _claims_are_whole(data: Mapping[str, Any]) -> bool:
    """Whether every claim has the fields the rules read (else the validator's messages come first)."""
    needed = ("layer", "tensor", "row", "column", "index", "status", "sources")
    claims = data.get("claims")
    return isinstance(claims, list) and all(isinstance(c, Mapping) and all(k in c for k in needed) for c in claims)


def fill(data: Mapping[str, Any], today: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The entry with what follows from its own data written in, and a line for each field written.

    Missing ``schema_version`` and ``modified``; each claim's missing ``impact`` (unmeasured) and missing
    ``status`` (what its sources give); and the ``verdict`` the claims add up to. Nothing present is
    changed except the verdict, which is never a person's call.
    """
    result = copy.deepcopy(dict(data))
    wrote: list[str] = []
    if "schema_version" not in result:
        result["schema_version"] = SCHEMA_VERSION
        wrote.append(f"schema_version: {SCHEMA_VERSION}")
    if "modified" not in result:
        result["modified"] = today
        wrote.append(f"modified: {today}")
    for i, claim in enumerate(result.get("claims") or []):
        if not isinstance(claim, dict):
            continue
        if "impact" not in claim:
            keys = list(claim)
            at = keys.index("status") + 1 if "status" in keys else len(keys)  # where every entry keeps it
            placed = {k: claim[k] for k in keys[:at]} | {"impact": dict(_UNMEASURED)} | {k: claim[k] for k in keys[at:]}
            claim.clear()
            claim.update(placed)
            wrote.append(f"claims[{i}].impact: classification: unmeasured (nobody has zeroed it alone yet)")
        sources = claim.get("sources")
        if "status" not in claim and isinstance(sources, list) and all(_is_source(s) for s in sources) and sources:
            claim["status"] = status_from_sources(Source.from_dict(s) for s in sources)
            wrote.append(f"claims[{i}].status: {claim['status']} (what its sources give)")
    if _claims_are_whole(result):
        verdict = derive_verdict(result)
        if result.get("verdict") != verdict:
            result["verdict"] = verdict
            fields = ", ".join(f"{k}: {v}" for k, v in verdict.items())
            wrote.append(f"verdict: {{{fields}}} ({verdict_of(result).text})")
    if "claims" not in result:
        result["claims"] = []
        wrote.append("claims: [] (none yet)")
    return _in_place(result, data), tuple(wrote)


def _is_source(source: Any) -> bool:
    return isinstance(source, Mapping) and all(isinstance(source.get(k), str) for k in ("citation", "kind", "evidence"))


def _in_place(entry: Mapping[str, Any], written: Mapping[str, Any]) -> dict[str, Any]:
    """The file's own field order kept; a field it lacked goes after the field the schema puts before it."""
    from .schema import entry_schema

    schema_order = list(entry_schema()["properties"])
    result = {key: entry[key] for key in written if key in entry}
    for key in (k for k in entry if k not in written):
        before = [k for k in schema_order[: schema_order.index(key)] if k in result] if key in schema_order else []
        keys = list(result)
        at = max(keys.index(k) for k in before) + 1 if before else (0 if key in schema_order else len(keys))
        result = {k: result[k] for k in keys[:at]} | {key: entry[key]} | {k: result[k] for k in keys[at:]}
    return result


def _comment_lines(text: str) -> list[int]:
    """1-based numbers of lines holding a YAML comment (outside any quoted or block text)."""
    spans = []
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.ScalarToken):
            spans.append((token.start_mark.index, token.end_mark.index))
    found = []
    for match in re.finditer(r"(?:^|(?<=[ \t]))#", text, re.M):
        if not any(start <= match.start() < end for start, end in spans):
            found.append(text.count("\n", 0, match.start()) + 1)
    return found


def _header(text: str) -> tuple[str, int]:
    """The comment block a file starts with (kept on rewrite, without its '# ') and how many lines it takes."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].lstrip(" ") if line.startswith("# ") or line == "#" else line[1:])
    return "\n".join(lines), len(lines)


def fix_file(path: str | Path, today: str) -> tuple[str, ...]:
    """Fill in what follows from the entry's own data and rewrite the file atomically; what was written, one line each.

    A file whose rewrite would drop a comment (other than the block it starts with) is refused, so no
    note a person wrote is lost; nothing is written when there is nothing to fill.
    """
    from .registry import write_atomic

    path = Path(path)
    text = read_text(path)
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise RegistryFileError(path, "an entry is a mapping of fields; --fix has nothing to fill", 1)
    filled, wrote = fill(data, today)
    if not wrote:
        return ()
    header, skip = _header(text)
    dropped = [n for n in _comment_lines(text) if n > skip]
    if dropped:
        raise SwindexError(
            f"{shown(str(path))}:{dropped[0]}: --fix rewrites the file and would drop the comment on line "
            f"{dropped[0]}; move it into a notes field (or write the fields by hand)"
        )
    output = dump_yaml(filled, header=header or None)
    if yaml.safe_load(output) != filled:  # pragma: no cover - dump_yaml round-trips; this guards the promise
        raise SwindexError(f"{shown(str(path))}: --fix could not write the entry back unchanged; nothing was written")
    write_atomic(path, output, mark=".fix")
    return wrote


def new_entry(model_id: str, architecture: str, registry: str | Path, today: str, family: str | None = None) -> Path:
    """Write a skeleton entry at ``registry/<id>.yaml`` (never over an existing file) and return its path."""
    from .registry import write_atomic
    from .validate import validate_entry_dict

    entry = skeleton(model_id, architecture, today, family)
    problems = validate_entry_dict(entry)
    if problems:
        raise SwindexError(f"cannot start an entry for {shown(model_id)}: {problems[0].field}: {problems[0].message}")
    path = Path(registry) / f"{model_id}.yaml"
    if path.exists():
        where = shown(str(path))
        raise SwindexError(f"{where} already exists: edit it (swindex validate --fix {where} fills the verdict)")
    write_atomic(path, dump_yaml(entry, header=SCHEMA_HEADER), mark=".new")
    return path
