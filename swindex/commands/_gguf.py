"""What detect and verify add for a GGUF file: the artifact in the run evidence, and llama.cpp's names for each claim.

Why here: the detector and verification take a loaded model and know nothing of files; the commands know the
path the user gave, so they record which file was measured and show coordinates as llama.cpp users look them up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def artifact_for(model: str, revision: str | None = None) -> Any:
    """The Artifact of MODEL when it names a GGUF file (or a folder holding one), else None."""
    from .._hubcache import is_commit_sha
    from ..loading import gguf_artifact, gguf_path

    path = gguf_path(model)
    if path is None:
        return None
    return gguf_artifact(path, revision=revision if is_commit_sha(revision) else None)


def gguf_lines(entry: Mapping[str, Any]) -> list[str]:
    """One line per claim: its coordinate and the same weight as llama.cpp names it (index fastest dimension first)."""
    from ..layout import gguf_index, gguf_tensor_name

    claims = entry.get("claims", entry.get("super_weights")) or []
    lines = []
    for claim in claims:
        layer, row, column, expert = claim.get("layer"), claim.get("row"), claim.get("column"), claim.get("expert")
        if layer is None or row is None or column is None:
            continue
        index = ", ".join(str(i) for i in gguf_index(row, column, expert))
        shared = "shared_expert" in str(claim.get("tensor", ""))
        lines.append(f"  layer {layer} [{row}, {column}]: {gguf_tensor_name(layer, expert, shared=shared)}[{index}]")
    if not lines:
        return []
    return ["llama.cpp tensor names (GGUF index order: column, row[, expert]):", *lines]
