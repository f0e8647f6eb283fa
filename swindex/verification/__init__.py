"""swindex.verification: measure what an entry's super weights do to a loaded model (see `verify.verify`).

Importing this package is light; torch and transformers load when `verify` runs.
"""

from __future__ import annotations

from .report import THRESHOLDS, Fingerprint, FingerprintWarning, Stopword, VerificationReport, WeightResult, classify
from .verify import RESTORE_FRACTION, control_targets, fingerprint, verify

__all__ = [
    "RESTORE_FRACTION",
    "THRESHOLDS",
    "Fingerprint",
    "FingerprintWarning",
    "Stopword",
    "VerificationReport",
    "WeightResult",
    "classify",
    "control_targets",
    "fingerprint",
    "verify",
]
