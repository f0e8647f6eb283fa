"""Checking many derived checkpoints at once: a bounded pool, a deadline per check, and a state file to resume.

Why this shape: a base model can have thousands of derived repositories, each answered by `swindex check`
in a few requests. Checks run on ``workers`` threads sharing one connection pool (`transport`); at most
twice that many are queued, so memory stays flat however long the listing. Each finished check is
appended to the state file at once, so a scan killed at any point, rerun with the same file, checks only
what it had not finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import SwindexError, shown
from .discovery import DerivedModel, Target

WORKERS = 16
DEADLINE_SECONDS = 30.0
STATE_VERSION = 1


@dataclass(frozen=True)
class DerivedCheck:
    """What became of one checkpoint of a derived model: a verdict from `swindex check`, or why there is none."""

    id: str
    kind: str
    revision: str | None
    file: str | None = None  # the GGUF file checked; None for the repository's safetensors
    verdict: str | None = None  # CheckReport.verdict; None when it was not checked
    skipped: str | None = None  # one of discovery.SKIP_REASONS when it was not checked
    reason: str = ""
    weights: int = 0
    kept: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def key(self) -> str:
        """What the state file knows it by: the repository, the commit and the file."""
        return state_key(self.id, self.revision, self.file)

    @property
    def outcome(self) -> str:
        """The verdict, or ``could not check``."""
        return self.verdict or "could not check"

    @property
    def name(self) -> str:
        return f"{self.id}/{self.file}" if self.file else self.id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DerivedCheck:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def state_key(repo: str, revision: str | None, file: str | None) -> str:
    return f"{repo}@{revision or ''}:{file or ''}"


class ScanState:
    """An append-only JSON-lines file of finished checks, one line per check.

    The first line names the base model, so a file is never resumed for another. Each record is one
    ``write`` of a whole line, flushed and fsynced before the next check is counted; a kill can leave only
    the last line torn, and opening the file cuts such a line off (that check is simply done again).
    """

    def __init__(self, path: str | os.PathLike[str], base: str) -> None:
        self.path = Path(path)
        self.base = base
        self.done: set[str] = set()
        self._repair_and_load()
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the scan, closed by close()
        if self.path.stat().st_size == 0:
            self._append({"scan": base, "version": STATE_VERSION})

    def _repair_and_load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SwindexError(f"{self.path}: cannot read the scan's state file ({exc.strerror or exc})") from None
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with open(self.path, "r+b") as handle:  # a torn last line from a killed scan
                handle.truncate(len(whole))
        for number, line in enumerate(whole.decode("utf-8", errors="replace").splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise SwindexError(
                    f"{self.path}:{number}: not a line a scan wrote; delete the file to start the scan afresh"
                ) from None
            if number == 1:
                if not isinstance(record, dict) or record.get("scan") != self.base:
                    found = shown(str(record.get("scan"))) if isinstance(record, dict) else "nothing"
                    raise SwindexError(
                        f"{self.path}: this state file is a scan of {found}, not of {shown(self.base)}: "
                        "give another --state file"
                    )
                continue
            if not isinstance(record, dict) or "id" not in record:
                raise SwindexError(
                    f"{self.path}:{number}: not a check record; delete the file to start the scan afresh"
                )
            self.done.add(state_key(record["id"], record.get("revision"), record.get("file")))

    def _append(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def record(self, check: DerivedCheck) -> None:
        self._append(check.to_dict())
        self.done.add(check.key)

    def records(self) -> Iterator[DerivedCheck]:
        """Every check recorded so far, read back from the file (earlier runs' included)."""
        with open(self.path, encoding="utf-8") as handle:
            next(handle, None)
            for line in handle:
                if line.endswith("\n"):
                    yield DerivedCheck.from_dict(json.loads(line))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ScanState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_target(
    model: DerivedModel, target: Target, entry: Any, *, deadline: float | None, endpoint: str | None = None
) -> DerivedCheck:
    """One checkpoint through `swindex check`, within ``deadline`` seconds.

    Every failure becomes a record, never an exception: one bad repository must not stop a scan.
    """
    from ..checkpoint import UnsupportedCheckpointError, check
    from .transport import deadline as within

    common: dict[str, Any] = {"id": model.id, "kind": model.kind, "revision": model.sha, "file": target.file}
    if target.skipped:
        return DerivedCheck(**common, skipped=target.skipped, reason=target.reason)
    started = time.monotonic()
    try:
        with within(deadline):
            report = check(model.spec, entry=entry, endpoint=endpoint, file=target.file)
    except UnsupportedCheckpointError as exc:
        return DerivedCheck(**common, skipped="unsupported", reason=exc.reason, seconds=time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001 - one repository, whatever it holds, must not end a scan of thousands
        elapsed = time.monotonic() - started
        if deadline is not None and elapsed >= deadline:
            reason = f"no answer within the {deadline:g} s deadline"
        elif isinstance(exc, SwindexError):
            reason = str(exc)
        else:  # not a refusal swindex wrote: say so, so that it is reported rather than taken for a bad file
            reason = f"unexpected {type(exc).__name__} (a swindex bug: please report it): {exc}"
        first = (reason.strip().splitlines() or [type(exc).__name__])[0]
        return DerivedCheck(**common, skipped="could not read", reason=first, seconds=elapsed)
    resolved = report.checkpoint.split("@", 1)[1].split("/", 1)[0] if "@" in report.checkpoint else None
    return DerivedCheck(
        **{**common, "revision": model.sha or resolved},
        verdict=report.verdict,
        weights=len(report.weights),
        kept=report.counts.get("kept", 0),
        bytes_read=report.bytes_read,
        seconds=time.monotonic() - started,
    )


def scan(
    models: Iterable[DerivedModel],
    entry: Any,
    *,
    workers: int = WORKERS,
    deadline: float | None = DEADLINE_SECONDS,
    state: ScanState | None = None,
    endpoint: str | None = None,
    checker: Callable[..., DerivedCheck] = check_target,
) -> Iterator[DerivedCheck]:
    """Check every target of every model on ``workers`` threads, yielding each result as it finishes.

    Targets the state file already holds are not checked again; each new result is recorded there
    before it is yielded. Skipped targets are yielded (and recorded) without using a worker.
    """
    from .transport import scan_session

    if workers < 1:
        raise SwindexError(f"workers={workers}: at least one worker is needed")
    done = state.done if state is not None else set()

    def finished(result: DerivedCheck) -> DerivedCheck:
        if state is not None:
            state.record(result)
        return result

    with (
        scan_session(connections=workers),
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="swindex-derived") as pool,
    ):
        running: set[Future[DerivedCheck]] = set()
        try:
            for model in models:
                for target in model.targets():
                    if state_key(model.id, model.sha, target.file) in done:
                        continue
                    if target.skipped:
                        yield finished(checker(model, target, entry, deadline=deadline, endpoint=endpoint))
                        continue
                    while len(running) >= 2 * workers:
                        complete, running = wait(running, return_when=FIRST_COMPLETED)
                        for future in complete:
                            yield finished(future.result())
                    running.add(pool.submit(checker, model, target, entry, deadline=deadline, endpoint=endpoint))
            while running:
                complete, running = wait(running, return_when=FIRST_COMPLETED)
                for future in complete:
                    yield finished(future.result())
        finally:
            for future in running:
                future.cancel()
