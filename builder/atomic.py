"""Writing registry entries so that a run killed at any moment leaves every file whole and valid.

An entry is validated and serialised first; the text goes to a temporary file in the same directory,
which is flushed and fsynced, then renamed over the target with os.replace (atomic on POSIX and
Windows), and the directory is fsynced so that the rename itself survives a power cut. Readers see
the old file or the new one, never a mix; a crash leaves at most a hidden ``.NAME.builder-*.tmp``
file, which the next run removes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swindex.errors import ValidationError
from swindex.registry import write_atomic
from swindex.validate import validate_entry_dict
from swindex.yamlio import dump_yaml, parse_yaml

TMP_MARK = ".builder-"
TMP_SUFFIX = ".tmp"


def entry_path(registry: str | Path, model_id: str) -> Path:
    """registry/<org>/<name>.yaml for a model id (ids were checked against the schema's pattern)."""
    *org, name = model_id.split("/")
    return Path(registry).joinpath(*org, f"{name}.yaml")


def render_entry(data: Mapping[str, Any], path: str | Path | None = None) -> str:
    """The YAML text of a valid entry; raises ValidationError (naming the file and fields) otherwise."""
    problems = validate_entry_dict(dict(data), path)
    if problems:
        raise ValidationError(problems)
    text = dump_yaml(dict(data))
    reread, _ = parse_yaml(text, str(path or "<entry>"))
    if reread != dict(data):
        raise ValidationError([f"{path}: the entry does not survive a YAML round trip; refusing to write it"])
    return text


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace path's content with text in one step; on any failure the old file stays as it was."""
    write_atomic(path, text, mark=TMP_MARK)


def write_entry(path: str | Path, data: Mapping[str, Any], header: str = "") -> bool:
    """Validate and atomically write one entry (after header comment lines); returns False, writing nothing, when the
    file already holds exactly this text."""
    text = header + render_entry(data, path)
    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_text_atomic(path, text)
    return True


def remove_stale_temporaries(registry: str | Path) -> list[Path]:
    """Delete the temporary files a killed run left behind; returns what was removed."""
    root = Path(registry)
    if not root.is_dir():
        return []
    removed = []
    for tmp in root.rglob(f".*{TMP_MARK}*{TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
