"""Every derived checkpoint of a registry model, found through the Hub's model tree and checked.

``list_derived(BASE)`` lists the fine-tunes, quantizations, adapters and merges the Hub links to a base
model; ``scan(models, entry)`` runs `swindex check` on each of their checkpoints concurrently, with a
deadline per check, retries and a resumable state file. Needs the ``check`` extra.
"""

from __future__ import annotations

from .discovery import KINDS, SKIP_REASONS, DerivedModel, DiscoveryError, Target, list_derived
from .scan import DerivedCheck, ScanState, check_target, scan

__all__ = [
    "KINDS",
    "SKIP_REASONS",
    "DerivedCheck",
    "DerivedModel",
    "DiscoveryError",
    "ScanState",
    "Target",
    "check_target",
    "list_derived",
    "scan",
]
