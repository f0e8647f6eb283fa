"""One model through the builder: resume check, load, detect, merge, verify, validated atomic write."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swindex.claims import coordinate_of, derive_verdict, has_standing_claim, impact_of, touch
from swindex.errors import RegistryFileError
from swindex.verification import VerificationReport, record

from .atomic import entry_path, write_entry
from .derived import check_checkpoint, with_derived_checks
from .merge import canonical, merge_entry, stamp
from .modellist import ModelSpec
from .state import done_reason, read_entry, read_header
from .summary import FAILED, INTERRUPTED, NOT_RUN, SKIPPED, UNCHANGED, WRITTEN, Outcome, classify


@dataclass(frozen=True)
class Backend:
    """What the builder does to a model; the default (builder.backend) uses swindex's loader, detector and verifier."""

    tool: Callable[[], str]
    resolve_revision: Callable[[ModelSpec], str | None]
    load: Callable[[ModelSpec, str | None], Any]
    detect: Callable[[Any, ModelSpec], Mapping[str, Any]]
    #: measures the entry's claims on the model: a VerificationReport dated by its fourth argument (YYYY-MM-DD), which
    #: swindex.verification.record writes into the entry; its last argument reports progress ("weight k of n: ...")
    verify: Callable[[Any, Mapping[str, Any], ModelSpec, str, Callable[[str], None]], VerificationReport]
    cleanup: Callable[[], None] = lambda: None
    #: the file the loaded model was read from (swindex.records.Artifact, such as a GGUF file), or None
    artifact: Callable[[Any], Any] = lambda model: None
    #: the detection thresholds this run uses; an entry found with other thresholds is redone
    thresholds: Callable[[], Mapping[str, float] | None] = lambda: None
    #: reads a derived checkpoint's super weights against an entry dict (swindex check)
    check: Callable[[str, Mapping[str, Any]], Any] = check_checkpoint


@dataclass(frozen=True)
class RunOptions:
    """How this run treats every model."""

    registry: Path
    today: str
    force: bool = False
    verify: bool = True
    schema_header: Callable[[Path], str] = field(default=lambda path: "")


def _measurable(entry: Mapping[str, Any]) -> bool:
    """Whether verification has anything to decide: a claim that stands, or a candidate."""
    return has_standing_claim(entry)


def _with_revision(fresh: Mapping[str, Any], spec: ModelSpec, revision: str | None) -> dict[str, Any]:
    """A local copy of a Hub checkpoint knows no commit; record the one the list (or the Hub) names."""
    result = copy.deepcopy(dict(fresh))
    result["id"] = spec.id
    if revision and not result.get("revision"):
        result["revision"] = revision
    run = (result.get("evidence") or {}).get("detection")
    if isinstance(run, dict) and revision and not run.get("revision"):
        run["revision"] = revision
    return result


def _finish(entry: Mapping[str, Any], existing: Mapping[str, Any] | None, today: str) -> dict[str, Any]:
    entry = dict(canonical(entry), verdict=derive_verdict(entry))
    return canonical(touch(canonical(entry), canonical(existing) if existing is not None else None, today))


def run_model(
    spec: ModelSpec, backend: Backend, options: RunOptions, status: Callable[[str], None] = lambda s: None
) -> Outcome:
    """Build one model's entry; every failure becomes a failed Outcome so the other models go on."""
    started = time.monotonic()
    path = entry_path(options.registry, spec.id)
    model = None
    try:
        try:
            existing = read_entry(path)
        except RegistryFileError as exc:
            if not options.force:
                raise RegistryFileError(
                    path, f"existing entry cannot be read ({exc.reason}); fix it or rerun with --force", exc.line
                ) from None
            existing = None
        verify = options.verify and spec.verify
        revision = backend.resolve_revision(spec)
        if not options.force:
            reason = done_reason(existing, backend.tool(), revision, verify, backend.thresholds())
            if reason:
                return Outcome(spec.id, SKIPPED, message=reason, path=str(path), seconds=time.monotonic() - started)

        status("loading")
        model = backend.load(spec, revision)
        status("detecting")
        fresh = stamp(_with_revision(backend.detect(model, spec), spec, revision), options.today)
        merged = merge_entry(existing, fresh, options.today, replace_own=options.force)
        entry = merged.entry
        if verify and _measurable(entry):
            status("verifying")
            report = backend.verify(model, entry, spec, options.today, lambda message: status(f"verifying {message}"))
            entry = record(entry, report, today=options.today, artifact=backend.artifact(model), where=path).entry
        if spec.derived:
            status("checking derived models")
            entry = with_derived_checks(entry, spec.derived, backend.check, options.today)
        entry = _finish(entry, existing, options.today)

        status("writing")
        changed = write_entry(path, entry, header=read_header(path) or options.schema_header(path))
        return Outcome(
            spec.id,
            WRITTEN if changed else UNCHANGED,
            path=str(path),
            detected=merged.detected,
            added=merged.added,
            matched=merged.matched,
            disagreements=merged.not_found,
            inert=tuple(
                coordinate_of(c)
                for c in entry.get("claims") or []
                if impact_of(c) == "inert" and coordinate_of(c) in (*merged.added, *merged.matched)
            ),
            seconds=time.monotonic() - started,
        )
    except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
        message = f"{type(exc).__name__}: {exc}".strip()
        return Outcome(
            spec.id,
            FAILED,
            reason=classify(exc),
            message=" ".join(message.split())[:500],
            path=str(path),
            seconds=time.monotonic() - started,
        )
    finally:
        if model is not None:
            del model  # the only reference: the memory can go back before the next model loads
            backend.cleanup()


@dataclass
class Progress:
    """A progress bar over the models (tqdm on stderr), with the current model's step as its description."""

    total: int
    enabled: bool = True
    _bar: Any = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=self.total, unit="model", dynamic_ncols=True, leave=True)
        return self

    def step(self, model_id: str, what: str) -> None:
        if self._bar is not None:
            self._bar.set_description(f"{model_id}: {what}")

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.set_description("builder")
            self._bar.close()


def run_all(
    specs: Sequence[ModelSpec], backend: Backend, options: RunOptions, progress: bool = True
) -> tuple[list[Outcome], bool]:
    """Run every model in order; on KeyboardInterrupt stop cleanly and mark the rest.
    Returns (outcomes, interrupted)."""
    outcomes: list[Outcome] = []
    with Progress(len(specs), enabled=progress) as bar:
        for i, spec in enumerate(specs):
            try:
                outcome = run_model(spec, backend, options, status=lambda what, s=spec: bar.step(s.id, what))
            except KeyboardInterrupt:
                outcomes.append(
                    Outcome(
                        spec.id,
                        INTERRUPTED,
                        message="stopped; its entry is either untouched or completely written; rerun to resume",
                        path=str(entry_path(options.registry, spec.id)),
                    )
                )
                outcomes.extend(
                    Outcome(s.id, NOT_RUN, message="not reached", path=str(entry_path(options.registry, s.id)))
                    for s in specs[i + 1 :]
                )
                return outcomes, True
            outcomes.append(outcome)
            bar.advance()
    return outcomes, False
