"""The builder's default backend: swindex.loading to load, swindex.detect to find, swindex.verify to measure.

Kept apart from the run loop so that the loop stays testable without torch, and so that the heavy
imports happen only when a model is actually processed.
"""

from __future__ import annotations

import dataclasses
import gc
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swindex.errors import SwindexError, one_line, shown
from swindex.verification import VerificationReport

from .modellist import ModelSpec
from .pipeline import Backend


def tool() -> str:
    """The tool string swindex.detect records in ``evidence.detection.tool`` (what resume compares)."""
    from swindex.version import tool as swindex_tool

    return swindex_tool()


def thresholds() -> dict[str, float]:
    """The detection thresholds a run records in ``evidence.detection.thresholds`` (resume compares them too)."""
    from swindex.detection import Thresholds

    return Thresholds().as_measurements()


class ModelAccessError(SwindexError):
    """The Hub refused a model (gated, missing, unknown revision):
    the run records why instead of measuring a stale copy."""


def resolve_revision(spec: ModelSpec) -> str | None:
    """The commit this run will measure: the list's pin, else the Hub's current one (cache when offline);
    None for plain local directories."""
    if spec.revision:
        return spec.revision
    from swindex._hubcache import parse_snapshot
    from swindex.loading import resolve_source

    if spec.local:
        if _is_gguf(spec):
            # the commit of the model a GGUF file quantizes is not known; the file's own goes with its artifact
            return None
        return parse_snapshot(spec.location())[1]
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return HfApi().model_info(spec.id).sha
    except (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError) as exc:
        # the Hub answered: a cached commit would measure a model this account cannot see, or one that is gone
        raise ModelAccessError(
            f"{shown(spec.id)}: the Hub refused it ({type(exc).__name__}): {one_line(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - offline or unreachable (the HTTP client's own errors): the cache decides
        cached = resolve_source(spec.id)[2]
        warnings.warn(
            f"{shown(spec.id)}: the Hub did not answer ({type(exc).__name__}: {one_line(exc)}); "
            f"measuring the cached commit {cached or '(none)'}",
            stacklevel=2,
        )
        return cached


def _max_memory(spec: ModelSpec) -> dict[Any, str] | None:
    if not spec.max_memory:
        return None
    return {int(k) if k.isdigit() else k: v for k, v in spec.max_memory.items()}


def _is_gguf(spec: ModelSpec) -> bool:
    from swindex.loading import gguf_path

    return spec.path is not None and gguf_path(spec.location()) is not None


@dataclass
class Session:
    """The model being processed; detection may swap in a wider-dtype reload, which verification then uses."""

    loaded: Any
    notes: list[str] = field(default_factory=list)


def load(spec: ModelSpec, revision: str | None) -> Session:
    """Load through swindex.loading (dtype choice, device map and CPU/disk offload by accelerate)."""
    from swindex.loading import load_model

    gguf = _is_gguf(spec)
    if gguf:
        revision = (spec.artifact or {}).get("revision")
    loaded = load_model(
        spec.location(),
        revision=revision if not spec.local or gguf else spec.revision,
        dtype=spec.dtype,
        device=spec.device,
        trust_remote_code=spec.trust_remote_code,
        offload_folder=spec.offload_folder,
        max_memory=_max_memory(spec),
    )
    if loaded.artifact is not None and spec.artifact:
        loaded = dataclasses.replace(loaded, artifact=loaded.artifact.__replace__(**spec.artifact))
    return Session(loaded, list(loaded.notes))


def detect(session: Session, spec: ModelSpec) -> Mapping[str, Any]:
    """Run the detector on the loaded model and return its entry filed under the list's id.

    A float16 overflow is handled by swindex's one fallback (swindex.loading.run_widening): the session then holds
    the wider reload, which verification measures too.
    """
    from swindex.detection import detect_loaded
    from swindex.records import with_artifact

    options: dict[str, Any] = {"model_id": spec.id}
    if spec.prompt is not None:
        options["prompt"] = spec.prompt
    if spec.input_ids is not None:
        options["input_ids"] = list(spec.input_ids)
    result, session.loaded = detect_loaded(session.loaded, **options)
    session.notes = list(session.loaded.notes)
    return with_artifact(result.to_entry(model_id=spec.id), session.loaded.artifact, ("detection",))


def verify(
    session: Session,
    entry: Mapping[str, Any],
    spec: ModelSpec,
    today: str,
    say: Callable[[str], None] = lambda message: None,
) -> VerificationReport:
    """Measure every claim of the (merged) entry on the loaded model, dated ``today``; ``say`` hears each pass.

    The pipeline records the report through swindex.verification.record, as `swindex verify --output` does.
    """
    from swindex.records import Entry
    from swindex.verification import verify as run_verification

    loaded = session.loaded
    sizes = {"sequences": spec.verify_sequences, "length": spec.verify_length}
    return run_verification(
        loaded.model,
        Entry.from_dict(dict(entry)),
        tokenizer=loaded.tokenizer,
        revision=loaded.revision,
        today=today,
        progress=say,
        refuse_mismatch=True,  # record would refuse the report: measuring other weights is time thrown away
        **{k: v for k, v in sizes.items() if v is not None},
    )


def artifact(session: Session) -> Any:
    """The file the session's model was read from (a GGUF file's Artifact), which a verification records."""
    return session.loaded.artifact


def cleanup() -> None:
    """Give the last model's memory back (CPU and GPU) before the next one loads."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def default_backend() -> Backend:
    return Backend(
        tool=tool,
        resolve_revision=resolve_revision,
        load=load,
        detect=detect,
        verify=verify,
        cleanup=cleanup,
        artifact=artifact,
        thresholds=thresholds,
    )
