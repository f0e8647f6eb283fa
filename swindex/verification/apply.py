"""Recording a verification in an entry: the one workflow `swindex verify --output`, `detect --verify` and the
builder share.

refuse (a fingerprint mismatch: the measured weights are not the entry's) -> apply (the run's evidence, each
measured claim's impact) -> reconcile (swindex's disagreements, the verdict: `swindex.claims.reconcile`) -> the
artifact measured -> evidence only (a changed status, source or any other field is a bug, refused) -> ``modified``
(`swindex.claims.touch`: ``today`` when anything else changed) -> validate. The result is always a valid entry;
writing it is the caller's (each front end writes its own way: an atomic YAML file, the builder's file with its
header), and a refusal leaves nothing to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .report import Fingerprint, VerificationReport

_VERIFICATION_WRITES = ("evidence", "modified", "verdict", "disagreements")
"""Entry fields recording a verification may change (besides each claim's ``evidence`` and ``impact``)."""


@dataclass(frozen=True)
class Recorded:
    """An entry with a verification recorded, and what changed in it, in words (for a summary)."""

    entry: dict[str, Any]
    changes: tuple[str, ...]


def _without_evidence(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entry less what recording a verification may write: run and per-claim evidence, impacts, verdict, date."""
    rest = {k: v for k, v in entry.items() if k not in _VERIFICATION_WRITES}
    rest["claims"] = [
        {k: v for k, v in claim.items() if k not in ("evidence", "impact")} for claim in entry.get("claims") or []
    ]
    return rest


def refuse_mismatch(entry: Mapping[str, Any], fingerprint: Fingerprint, where: Any = None) -> None:
    """FingerprintMismatchError when the weights measured are not the ones ``entry`` records: measurements of other
    weights (another revision, a fine-tune) are no evidence for its claims. `record` asks this of every report;
    `verify(refuse_mismatch=True)` asks it before measuring, for a caller that would only record the run."""
    from ..errors import FingerprintMismatchError, shown

    if fingerprint.matches:
        return
    model = shown(str(entry.get("id") or "the entry"))
    first = shown(fingerprint.mismatches[0]) if fingerprint.mismatches else "recorded values"
    more = len(fingerprint.mismatches) - 1
    raise FingerprintMismatchError(
        f"{model}: the verification is not recorded{'' if where is None else f' in {shown(str(where))}'}: "
        f"the loaded weights differ from the values the entry records ({first}"
        f"{f' and {more} more' if more > 0 else ''}), so its measurements are not evidence for the entry; "
        "verify the model (revision, file) the entry describes"
    )


def record(
    entry: Mapping[str, Any], report: VerificationReport, *, today: str, artifact: Any = None, where: Any = None
) -> Recorded:
    """``entry`` with ``report`` recorded as above.

    FingerprintMismatchError when the loaded weights are not the entry's, VerificationError when recording would
    change more than evidence, ValidationError (naming ``where``, a file) when the result is invalid; ``entry`` is
    never changed. ``artifact`` (swindex.records.Artifact or its dict) names the file measured, such as a GGUF file.
    """
    from ..claims import touch
    from ..dates import parse_date
    from ..errors import ValidationError, VerificationError, shown
    from ..records import with_artifact
    from ..validate import validate_entry_dict

    parse_date(today, "today")
    refuse_mismatch(entry, report.fingerprint, where)
    before = dict(entry)
    updated, changes = report.applied(before)
    if artifact is not None:
        updated = with_artifact(updated, artifact, ("verification",))
    if _without_evidence(updated) != _without_evidence(before):
        raise VerificationError(
            f"{shown(str(entry.get('id') or 'the entry'))}: recording the verification changed the entry beyond its "
            "evidence (claims' status, sources or other fields); nothing was recorded. Report this as a swindex bug"
        )
    updated = touch(updated, before, today)
    problems = validate_entry_dict(updated, None if where is None else str(where))
    if problems:
        raise ValidationError(problems)
    return Recorded(updated, changes)


__all__ = ["Recorded", "record", "refuse_mismatch"]
