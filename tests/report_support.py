"""Verification reports with chosen figures, for tests of what records a report (the builder, `record`) without a
model: every claim zeroed gives the same perplexity ratio, and the fingerprint matches unless told otherwise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swindex.claims import classify
from swindex.records import Coordinate
from swindex.verification import Fingerprint, VerificationReport, WeightResult

ORIGINAL = 10.0
"""The scripted original perplexity."""


def scripted_report(
    entry: Mapping[str, Any], *, today: str, ratio: float = 5.0, tool: str = "swindex-fake 1", matches: bool = True
) -> VerificationReport:
    """What a verification of ``entry`` dated ``today`` would report if zeroing each claim multiplied perplexity by
    ``ratio``; ``matches=False`` reports each recorded value as differing from the loaded one."""
    claims = list(entry.get("claims") or [])
    weights = tuple(
        WeightResult(
            location=Coordinate.from_dict(claim),
            status=claim.get("status"),
            recorded_value=claim.get("value"),
            loaded_value=float(claim.get("value") or 0.0) + (0.0 if matches else 1.0),
            zeroed=ORIGINAL * ratio,
            ratio=ratio,
            classification=classify("perplexity", ratio),
            super_activation=None,
            super_activation_zeroed=None,
        )
        for claim in claims
    )
    mismatches = () if matches else tuple(f"{w.coordinate}: recorded {w.recorded_value}" for w in weights)
    return VerificationReport(
        model=entry.get("id"),
        entry_id=entry.get("id"),
        revision=entry.get("revision"),
        dtype="float32",
        device="cpu",
        date=today,
        tool=tool,
        metric="perplexity",
        text="scripted",
        sequences=1,
        tokens=16,
        original=ORIGINAL,
        all_zeroed=ORIGINAL * ratio * 2,
        control=ORIGINAL,
        restored_activation=None,
        weights=weights,
        control_weights=(),
        fingerprint=Fingerprint(matches, len(claims), mismatches),
    )
