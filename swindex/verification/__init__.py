"""swindex.verification: measure what an entry's claims do to a loaded model (see `verify.verify`).

Importing this package is light; torch and transformers load when `verify` runs.
"""

from __future__ import annotations

from ..claims import classify
from .ablations import METHODS, RESTORE_FRACTION
from .apply import Recorded, record
from .plan import control_targets, fingerprint
from .report import THRESHOLDS, Fingerprint, FingerprintWarning, Stopword, VerificationReport, WeightResult
from .verify import verify

__all__ = [
    "METHODS",
    "RESTORE_FRACTION",
    "THRESHOLDS",
    "Fingerprint",
    "FingerprintWarning",
    "Recorded",
    "Stopword",
    "VerificationReport",
    "WeightResult",
    "classify",
    "control_targets",
    "fingerprint",
    "record",
    "verify",
]
