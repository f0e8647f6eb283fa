"""Recording a verification in an entry: the one workflow `swindex verify --output`,
`detect --verify` and the builder share.

apply (the run's evidence, each measured claim's impact) -> reconcile (swindex's disagreements, the verdict:
`swindex.claims.reconcile`) -> the artifact measured -> ``modified`` (`swindex.claims.touch`: ``today`` when
anything else changed) -> validate. The result is always a valid entry; writing it is the caller's (each
front end writes its own way: an atomic YAML file, the builder's file with its header).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .report import VerificationReport


@dataclass(frozen=True)
class Recorded:
    """An entry with a verification recorded, and what changed in it, in words (for a summary)."""

    entry: dict[str, Any]
    changes: tuple[str, ...]


def record(
    entry: Mapping[str, Any], report: VerificationReport, *, today: str, artifact: Any = None, where: Any = None
) -> Recorded:
    """``entry`` with ``report`` recorded as above;
    ValidationError (naming ``where``, a file) when the result is invalid.

    ``artifact`` (swindex.loading.Artifact or its dict) names the file measured, such as a GGUF file.
    """
    from ..claims import touch
    from ..dates import parse_date
    from ..errors import ValidationError
    from ..loading import with_artifact
    from ..validate import validate_entry_dict

    parse_date(today, "today")
    before = dict(entry)
    updated, changes = report.applied(before)
    if artifact is not None:
        updated = with_artifact(updated, artifact, ("verification",))
    updated = touch(updated, before, today)
    problems = validate_entry_dict(updated, None if where is None else str(where))
    if problems:
        raise ValidationError(problems)
    return Recorded(updated, changes)


__all__ = ["Recorded", "record"]
