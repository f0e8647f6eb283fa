"""What happened to each model: outcomes, failure kinds, the final table and the JSON report."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from swindex.errors import DetectionError, UnsupportedModelError, ValidationError, VerificationError

WRITTEN, UNCHANGED, SKIPPED, FAILED, INTERRUPTED, NOT_RUN = (
    "written",
    "unchanged",
    "skipped",
    "failed",
    "interrupted",
    "not run",
)
OK_STATUSES = (WRITTEN, UNCHANGED, SKIPPED)


@dataclass(frozen=True)
class Outcome:
    """One model's result in this run."""

    id: str
    status: str
    reason: str = ""
    message: str = ""
    path: str = ""
    detected: int | None = None
    added: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()
    disagreements: tuple[str, ...] = ()
    inert: tuple[str, ...] = ()  # detected coordinates whose verification found them harmless (status inert)
    seconds: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def classify(exc: BaseException) -> str:
    """A short failure kind for the summary: missing, gated, out of memory, unsupported, invalid,
    detection, verification, error."""
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if "GatedRepoError" in names or "gated repo" in text or "awaiting a review" in text:
        return "gated"
    if names & {"OutOfMemoryError", "MemoryError"} or "out of memory" in text:
        return "out of memory"
    if any(isinstance(e, UnsupportedModelError) for e in chain):
        return "unsupported"
    if any(isinstance(e, ValidationError) for e in chain):
        return "invalid entry"
    missing = {
        "RepositoryNotFoundError",
        "RevisionNotFoundError",
        "EntryNotFoundError",
        "LocalEntryNotFoundError",
        "FileNotFoundError",
        "ModelLocationError",
    }
    if (
        names & missing
        or "does not appear to have a file" in text
        or "is not a local folder" in text
        or "not a valid model identifier" in text
    ):
        return "missing"
    if any(isinstance(e, VerificationError) for e in chain):
        return "verification"
    if any(isinstance(e, DetectionError) for e in chain):
        return "detection"
    if "unrecognized model" in text or "does not recognize this architecture" in text:
        return "unsupported"
    return "error"


def exit_status(outcomes: Sequence[Outcome], interrupted: int | None = None) -> int:
    """0 when every model is fine, 1 when some failed, 128+signal when the run was interrupted."""
    if interrupted:
        return 128 + interrupted
    return 0 if all(o.ok for o in outcomes) else 1


DETAIL_WIDTH = 160


def _short(text: str, width: int = DETAIL_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _row(o: Outcome) -> list[str]:
    found = "" if o.detected is None else str(o.detected)
    changes = []
    if o.added:
        changes.append(f"+{len(o.added)} new")
    if o.matched:
        changes.append(f"{len(o.matched)} matched")
    if o.disagreements:
        changes.append(f"{len(o.disagreements)} disagree")
    if o.inert:
        changes.append(f"{len(o.inert)} inert")
    detail = o.message if not o.ok or o.status == SKIPPED else ", ".join(changes)
    status = f"{o.status} ({o.reason})" if o.reason else o.status
    return [o.id, status, found, _short(detail), f"{o.seconds:.1f}s" if o.seconds else ""]


HEADERS = ["model", "status", "found", "details", "time"]


def _counts(outcomes: Sequence[Outcome]) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "no models"


def render_plain(outcomes: Sequence[Outcome]) -> str:
    """The summary as a fixed-width text table."""
    rows = [HEADERS] + [_row(o) for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(outcomes)} model(s): {_counts(outcomes)}")
    return "\n".join(lines)


def print_summary(outcomes: Sequence[Outcome], stream: IO[str] | None = None) -> None:
    """Print the summary table (rich when it is installed and the stream is a terminal, plain text otherwise)."""
    stream = stream or sys.stdout
    if stream.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(title="swindex builder", caption=f"{len(outcomes)} model(s): {_counts(outcomes)}")
            for header in HEADERS:
                table.add_column(header, overflow="fold")
            styles = {
                WRITTEN: "green",
                UNCHANGED: "",
                SKIPPED: "dim",
                FAILED: "red",
                INTERRUPTED: "yellow",
                NOT_RUN: "dim",
            }
            for o in outcomes:
                table.add_row(*_row(o), style=styles.get(o.status, ""))
            Console(file=stream).print(table)
            return
    print(render_plain(outcomes), file=stream)


def write_report(path: str | Path, outcomes: Sequence[Outcome], exit_code: int) -> None:
    """A JSON record of the run, for CI (which files changed, what failed and why)."""
    from .atomic import write_text_atomic

    document = {"exit_status": exit_code, "models": [{**asdict(o), "ok": o.ok} for o in outcomes]}
    write_text_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
