"""The derived models of a base model, as the Hub's model tree links them, and what of each can be checked.

The Hub tags a model derived from ``BASE`` with ``base_model:KIND:BASE`` (KIND one of `KINDS`); one
paginated listing per kind (huggingface_hub follows the ``Link: rel="next"`` pages) gives each derived
model's kind, downloads, last modification and files. `DerivedModel.targets` then says, from the file
list alone, which checkpoints of the repository `swindex check` can read and why any other is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..constants import GGUF_SUFFIX
from ..errors import SwindexError
from .transport import deadline

KINDS = ("quantized", "finetune", "adapter", "merge")
"""The Hub's ``base_model:KIND:ID`` relations, in the order they are listed."""
EXPAND = ["downloads", "lastModified", "siblings", "gated", "tags", "sha"]
"""What each listing row carries: enough to decide what to check without asking for the model's info."""
PAGE_DEADLINE_SECONDS = 120.0
"""Most time one page of the listing may take (under `transport.scan_session`, which enforces it)."""
SKIP_REASONS = ("unsupported", "gated", "no weights", "remote code", "could not read")
"""Why a derived model was not judged: the first four are decided from the listing, the last by the check."""
REMOTE_CODE_TAG = "custom_code"
_UNREAD_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".mlmodel", ".tflite", ".npz")
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


class DiscoveryError(SwindexError):
    """The Hub's listing of derived models could not be read."""


@dataclass(frozen=True)
class Target:
    """One checkpoint of a derived repository: the repository's safetensors (``file`` None) or one GGUF file;
    ``skipped`` names why it is not checked (one of `SKIP_REASONS`), with ``reason`` saying it in words."""

    file: str | None = None
    skipped: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class DerivedModel:
    """A model the Hub lists as derived from a base model."""

    id: str
    kind: str  # one of KINDS
    sha: str | None = None
    downloads: int | None = None
    last_modified: str | None = None  # YYYY-MM-DD
    files: tuple[str, ...] = ()
    gated: bool = False
    remote_code: bool = False

    @classmethod
    def from_info(cls, info: Any, kind: str) -> DerivedModel:
        """From a huggingface_hub ModelInfo of a listing row."""
        modified = getattr(info, "last_modified", None)
        return cls(
            id=str(info.id),
            kind=kind,
            sha=getattr(info, "sha", None),
            downloads=getattr(info, "downloads", None),
            last_modified=modified.date().isoformat() if modified is not None else None,
            files=tuple(sorted(s.rfilename for s in getattr(info, "siblings", None) or ())),
            gated=bool(getattr(info, "gated", False)),
            remote_code=REMOTE_CODE_TAG in (getattr(info, "tags", None) or ()),
        )

    @property
    def spec(self) -> str:
        """What `swindex check` is given: the repository at the commit the listing saw."""
        return f"{self.id}@{self.sha}" if self.sha else self.id

    def targets(self) -> tuple[Target, ...]:
        """The checkpoints to check in this repository, or one skipped target saying why there are none."""
        if self.gated:
            return (
                Target(skipped="gated", reason="the repository is gated: its weights need accepted terms and a token"),
            )
        if self.remote_code:
            return (
                Target(
                    skipped="remote code",
                    reason="it runs its own modelling code, whose tensor layout check does not know",
                ),
            )
        top = [name for name in self.files if "/" not in name]
        found: list[Target] = []
        if any(name.endswith(".safetensors") and name not in ADAPTER_FILES for name in top):
            found.append(Target())
        found += [Target(file=name) for name in self.files if name.endswith(GGUF_SUFFIX)]
        if found:
            return tuple(found)
        if any(name in ADAPTER_FILES for name in top):
            return (
                Target(
                    skipped="unsupported",
                    reason="a LoRA adapter holds low-rank updates, not the weights: check the merged model",
                ),
            )
        unread = sorted({name.rsplit(".", 1)[-1] for name in self.files if name.endswith(_UNREAD_WEIGHTS)})
        if unread:
            return (
                Target(
                    skipped="unsupported",
                    reason=f"its weights are {', '.join('.' + u for u in unread)} files, which check does not read",
                ),
            )
        return (Target(skipped="no weights", reason="the repository holds no weight files"),)


def list_derived(base: str, *, kinds: Iterable[str] = KINDS, endpoint: str | None = None) -> Iterator[DerivedModel]:
    """Each model the Hub lists as derived from ``base``, once (under the first kind that lists it), page by page."""
    from huggingface_hub import HfApi

    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise DiscoveryError(f"unknown kind(s) {', '.join(unknown)}: choose from {', '.join(KINDS)}")
    api = HfApi(endpoint=endpoint)
    seen: set[str] = set()
    for kind in kinds:
        try:
            rows = iter(api.list_models(filter=f"base_model:{kind}:{base}", expand=EXPAND))  # type: ignore[arg-type]
            while True:
                with deadline(PAGE_DEADLINE_SECONDS):  # a page is fetched inside next(): a stalled listing fails
                    info = next(rows, None)
                if info is None:
                    break
                if info.id not in seen:
                    seen.add(info.id)
                    yield DerivedModel.from_info(info, kind)
        except SwindexError:
            raise
        except Exception as exc:  # noqa: BLE001 - network and hub errors arrive as many types; each becomes one line
            from ..checkpoint.remote import _describe

            raise DiscoveryError(f"listing the models derived from {base} ({kind}): {_describe(exc)}") from None
