"""Model loading for detect, verify, quantize and the builder: a Hub id, a local directory or a GGUF file in, a ready
model and its tokenizer out.

One place loads, so that every command measures the same model the same way. Rules:

* dtype and device follow `swindex._dtypes` (float32 on CPU when it fits the memory budget, CUDA when there is
  one). A model that does not fit is loaded with ``device_map="auto"`` so accelerate offloads what does not fit
  to CPU memory and then to disk; a float16 overflow reloads the model wider once (`run_widening`).
* ``trust_remote_code`` is off unless asked for; the offline cache is honoured (``HF_HUB_OFFLINE=1``).
* The revision is reported as a full commit sha when it can be known without a network call: a sha given
  by the caller, or the snapshot directory the Hub cache resolved (`swindex._hubcache`, looked up again after a
  first download).
* A temporary offload folder (made only when accelerate places weights and the caller named none) is
  removed as soon as it turns out unused, else when the model is garbage-collected or Python exits.
* A GGUF file (or a folder holding exactly one ``.gguf`` and no config.json) is loaded through transformers'
  GGUF support, dequantized to the chosen dtype; `LoadedModel.artifact` then names the exact file measured
  (name, sha256, quantization type from its header), since a quantized copy is not the checkpoint it quantizes.
  The header is read by check's one GGUF reader (`swindex.checkpoint.gguf_format`).
* The tokenizer comes with the model (a checkpoint's files or a GGUF header's vocabulary); a placeholder
  transformers builds for a checkpoint without one counts as none, so prompts fall back to token ids.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import warnings
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._dtypes import (
    DTYPE_BYTES,
    checkpoint_dtype,
    choose_dtype,
    fallback_dtype,
    memory_budget,
    resolve_device,
    torch_dtype,
)
from ._hashing import file_sha256
from ._hubcache import cached_sha, is_commit_sha, parse_snapshot
from .constants import GGUF_SUFFIX
from .errors import DetectionError, one_line
from .records import Artifact

if TYPE_CHECKING:
    from .checkpoint.gguf_format import GGUFFile


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run, with what we know about where it came from and how it was placed."""

    model: Any
    tokenizer: Any | None
    source: str
    model_id: str | None
    revision: str | None
    dtype: str
    device: str
    offloaded: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the load_model arguments besides dtype (revision as asked, device, trust_remote_code, offload), for `reload_in`
    options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: the dtype the checkpoint was saved in (from its config), which loading may have changed
    saved_dtype: str | None = None
    #: the exact file measured, for GGUF files (a quantized copy, not the checkpoint its config describes)
    artifact: Artifact | None = None


def context_length(config: Any) -> int | None:
    """How many positions the model can read (learned position tables crash past it), when the config says."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length", "max_sequence_length"):
        value = getattr(text, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def count_parameters(config: Any, cls: Any, trust_remote_code: bool = False) -> int | None:
    """Parameters of the model a config describes, counted on the meta device (no memory); None if unknown."""
    try:
        from accelerate import init_empty_weights

        with init_empty_weights():
            if hasattr(cls, "from_config"):
                model = cls.from_config(config, trust_remote_code=trust_remote_code)
            else:
                model = cls(config)
        return sum(p.numel() for p in model.parameters())
    except Exception as exc:  # noqa: BLE001 - any failure to build on meta; loading itself reports real problems
        # said, not swallowed: without a size no memory plan is made, so a model too large for memory fails in loading
        warnings.warn(
            f"cannot count the parameters of {type(config).__name__} on the meta device ({type(exc).__name__}: {exc}); "
            "loading it whole without a memory plan: pass max_memory or offload_folder if it may not fit",
            stacklevel=2,
        )
        return None


def resolve_source(source: str, revision: str | None = None) -> tuple[Path | None, str | None, str | None]:
    """(local directory or None, Hub id or None, full sha or None) for what the user named."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise DetectionError(
                f"{source} has no config.json and no .gguf file, so it is not a model directory; "
                "pass the folder that holds config.json, or a .gguf file"
            )
        snapshot_id, snapshot_sha = parse_snapshot(path)
        if revision is not None and not is_commit_sha(revision):
            raise DetectionError(
                f"{source} is a local directory, so --revision {revision!r} cannot select anything: "
                "give the full 40-character commit sha its files come from (it is recorded, not fetched), "
                "or pass the Hub id to load that revision"
            )
        if revision is not None and snapshot_sha is not None and revision != snapshot_sha:
            raise DetectionError(
                f"{source} is the Hub cache snapshot of revision {snapshot_sha}, not {revision}; "
                f"pass the Hub id to load {revision}"
            )
        return path, snapshot_id, revision or snapshot_sha
    if path.exists():
        raise DetectionError(
            f"{source} is a file; pass a model directory (with config.json) or a Hugging Face model id"
        )
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise DetectionError(f"no model directory at {source}; pass an existing directory or a Hugging Face model id")
    sha = revision if is_commit_sha(revision) else cached_sha(source, revision)
    return None, source, sha


def load_config(source: str, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """The model's config, with transformers' own errors turned into one that says what to do."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise DetectionError(
                f"{source} needs custom code from its repository; rerun with --trust-remote-code if you trust it"
            ) from exc
        raise DetectionError(f"cannot read the config of {source}: {one_line(exc)}") from exc
    except OSError as exc:
        raise DetectionError(
            f"cannot find model {source}: {one_line(exc).rstrip('. ')}. "
            "Check the id or path; offline, the model must be in the local cache"
        ) from exc


def model_class(config: Any, trust_remote_code: bool = False) -> Any:
    """The class the checkpoint was saved from, so parameter names match the checkpoint's tensor names."""
    import transformers

    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    if trust_remote_code and getattr(config, "auto_map", None):
        return (
            transformers.AutoModelForCausalLM if "AutoModelForCausalLM" in config.auto_map else transformers.AutoModel
        )
    if type(config) in transformers.AutoModelForCausalLM._model_mapping:
        return transformers.AutoModelForCausalLM
    return transformers.AutoModel


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def load_tokenizer(
    source: str, *, revision: str | None = None, trust_remote_code: bool = False
) -> tuple[Any | None, str | None]:
    """The checkpoint's tokenizer (None when it has none, so callers use token ids) and a note on why it is missing.

    transformers 5 builds an empty placeholder tokenizer for a model type when a checkpoint ships none;
    that would silently turn every prompt into unknown tokens, so it counts as no tokenizer.
    """
    path = Path(source).expanduser()
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None, None
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - token ids still work; the note says what went wrong
        return None, f"tokenizer not loaded ({type(exc).__name__}: {one_line(exc, 200)}); {_TOKEN_IDS}"
    return _real_tokenizer(tokenizer, "tokenizer")


_TOKEN_IDS = "token ids were used instead of text"
PLACEHOLDER_TOKENS = 16
"""A tokenizer this small is the empty placeholder transformers builds for a model type, not the checkpoint's."""


def _real_tokenizer(tokenizer: Any, what: str) -> tuple[Any | None, str | None]:
    """The tokenizer, or None and a note when it is only a placeholder (every prompt would be unknown tokens)."""
    if len(tokenizer) <= PLACEHOLDER_TOKENS:
        return None, f"the {what} has only {len(tokenizer)} tokens (a placeholder); {_TOKEN_IDS}"
    return tokenizer, None


def _placement(
    placed: str,
    dtype: str,
    parameters: int | None,
    offload_folder: str | Path | None,
    max_memory: dict[Any, Any] | None,
) -> tuple[dict[str, Any], str | None, bool]:
    """from_pretrained's placement arguments: accelerate's device map on a GPU, or offload to disk when the
    weights would not fit the memory budget (`swindex._dtypes.memory_budget`). Returns them, the scratch folder
    made (to remove on failure), and whether the model is offloaded."""
    offloaded = placed == "cpu" and (
        max_memory is not None or (parameters or 0) * DTYPE_BYTES[dtype] > memory_budget("cpu")
    )
    kwargs: dict[str, Any] = {}
    scratch: str | None = None
    if placed == "cuda" or offloaded:
        kwargs["device_map"] = "auto"
        if offload_folder is None:
            scratch = tempfile.mkdtemp(prefix="swindex-offload-")
        kwargs["offload_folder"] = str(offload_folder or scratch)
        if max_memory is not None:
            kwargs["max_memory"] = max_memory
        elif placed == "cpu":
            kwargs["max_memory"] = {"cpu": memory_budget("cpu")}
    return kwargs, scratch, offloaded


def load_model(
    source: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    offload_folder: str | Path | None = None,
    max_memory: dict[Any, Any] | None = None,
    with_tokenizer: bool = True,
) -> LoadedModel:
    """Load a model (Hub id, local directory or GGUF file) in eval mode, choosing dtype and placement safely."""
    gguf = gguf_path(source)
    if gguf is not None:
        return _load_gguf(
            gguf,
            str(source),
            revision=revision,
            dtype=dtype,
            device=device,
            offload_folder=offload_folder,
            max_memory=max_memory,
            with_tokenizer=with_tokenizer,
        )
    path, model_id, sha = resolve_source(str(source), revision)
    target = str(path) if path is not None else str(source)
    hub_revision = None if path is not None else revision
    config = load_config(target, revision=hub_revision, trust_remote_code=trust_remote_code)
    placed = resolve_device(device)
    cls = model_class(config, trust_remote_code)
    parameters = (
        count_parameters(config, cls, trust_remote_code) if placed == "cpu" else None
    )  # only CPU choices use it
    chosen, notes = choose_dtype(config, dtype, placed, parameters, max_memory)

    kwargs: dict[str, Any] = {"dtype": torch_dtype(chosen), "trust_remote_code": trust_remote_code}
    if hub_revision is not None:
        kwargs["revision"] = hub_revision
    placement = _placement(placed, chosen, parameters, offload_folder, max_memory)
    model, offloaded = _instantiate(cls, target, kwargs, placement, placed, notes, what=f"the weights of {source}")
    if sha is None and path is None:
        sha = cached_sha(str(source), revision)  # the first download has just filled the cache
    tokenizer = None
    if with_tokenizer:
        tokenizer, missing = load_tokenizer(target, revision=hub_revision, trust_remote_code=trust_remote_code)
        notes.extend([missing] if missing else [])
    options = {
        "revision": revision,
        "device": device,
        "trust_remote_code": trust_remote_code,
        "offload_folder": offload_folder,
        "max_memory": max_memory,
    }
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=str(source),
        model_id=model_id,
        revision=sha,
        dtype=chosen,
        device=placed,
        offloaded=offloaded,
        notes=tuple(notes),
        options=options,
        saved_dtype=checkpoint_dtype(config),
    )


def _instantiate(
    cls: Any,
    target: str,
    kwargs: dict[str, Any],
    placement: tuple[dict[str, Any], str | None, bool],
    placed: str,
    notes: list[str],
    *,
    what: str,
    refused: tuple[type[BaseException], ...] = (OSError,),
) -> tuple[Any, bool]:
    """``cls.from_pretrained`` placed as `_placement` planned, in eval mode, and whether accelerate offloaded it.

    The scratch offload folder goes on failure (and later with the model); errors of the ``refused`` types become a
    one-line DetectionError naming ``what``; an offload is noted in ``notes``.
    """
    extra, scratch, offloaded = placement
    try:
        model = cls.from_pretrained(target, **kwargs, **extra)
    except BaseException as exc:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        if isinstance(exc, refused):
            raise DetectionError(f"cannot load {what}: {one_line(exc)}") from exc
        raise
    if scratch is not None:
        _tie_scratch_folder(model, scratch)
    model.eval()
    device_map = getattr(model, "hf_device_map", None)
    if placed == "cuda" and device_map and any(v in ("cpu", "disk") for v in device_map.values()):
        offloaded = True
    if offloaded:
        notes.append("weights that do not fit are offloaded by accelerate (CPU memory, then disk)")
    return model, offloaded


def _tie_scratch_folder(model: Any, folder: str) -> None:
    """Remove our temporary offload folder now if accelerate wrote nothing there, else when the model is freed."""
    if not any(Path(folder).iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
        return
    weakref.finalize(model, shutil.rmtree, folder, True)


def reload_in(loaded: LoadedModel, dtype: str) -> LoadedModel:
    """The same model loaded again in another dtype (after float16 overflowed); drop the old one first.

    The same commit is loaded (the recorded sha when known), with the same device, remote-code and offload choices.
    """
    options = {**loaded.options, "device": loaded.device}
    if loaded.model_id and loaded.revision:
        options["revision"] = loaded.revision
    again = load_model(loaded.source, **options, dtype=dtype, with_tokenizer=False)
    return dataclasses.replace(
        loaded,
        model=again.model,
        dtype=dtype,
        device=again.device,
        offloaded=again.offloaded,
        notes=loaded.notes + again.notes,
        options=again.options,
    )


def run_widening(loaded: LoadedModel, work: Any) -> tuple[Any, LoadedModel]:
    """``work(loaded)``, and when its float16 activations overflow, the same work on the model reloaded wider.

    Returns what work returned and the LoadedModel it ran on (after a reload its notes say why). The one
    float16 fallback of swindex: callers hand over the model and keep what comes back, since the float16
    weights are freed in place before the wider copy loads (both may not fit together).
    """
    import gc

    from .errors import ActivationOverflowError

    try:
        return work(loaded), loaded
    except ActivationOverflowError:
        wider = fallback_dtype(loaded.dtype, loaded.device)
        if wider is None:
            raise
    # reload outside the except block: the exception's traceback still references the float16 activations
    described = dataclasses.replace(
        loaded, model=None, notes=(*loaded.notes, f"float16 activations overflowed (inf/nan); reloaded in {wider}")
    )
    _free(loaded.model)
    del loaded
    gc.collect()
    wider_loaded = reload_in(described, wider)
    return work(wider_loaded), wider_loaded


def _free(model: Any) -> None:
    """Release a model's weights in place, whoever still holds the module: every tensor becomes empty."""
    import torch

    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.device.type != "meta":
                tensor.data = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- GGUF files and the artifact record -------------------------------------------------------------------


def gguf_path(source: str | Path) -> Path | None:
    """The GGUF file a source names: the file itself, or the only .gguf in a folder that has no config.json.

    A folder with config.json is a transformers checkpoint whatever else it holds; a folder with several
    .gguf files is ambiguous, so that is an error naming them.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return path if path.suffix.lower() == GGUF_SUFFIX else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == GGUF_SUFFIX)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DetectionError(f"{source} holds {len(found)} .gguf files ({names}); pass the one to load as a file path")
    return found[0] if found else None


def gguf_header(path: str | Path) -> GGUFFile:
    """The header of a GGUF file, read by check's reader (`swindex.checkpoint.gguf_format`, within `swindex.limits`):
    metadata scalars and the tensor table, the long arrays stepped over; a broken file is a one-line error.
    Read once per version of the file (loading asks for the quantization type, then for the tokenizer)."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise DetectionError(f"cannot read the GGUF file {path}: {exc.strerror or exc}") from None
    return _gguf_header(str(resolved), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _gguf_header(path: str, size: int, mtime_ns: int) -> GGUFFile:  # size and mtime key the cache
    from .checkpoint.errors import CheckpointError
    from .checkpoint.gguf_format import read_gguf
    from .checkpoint.source import LocalFile, Transfer

    try:
        return read_gguf(LocalFile.open(path, Transfer()))
    except ImportError as exc:
        raise DetectionError(f'reading {path} needs the gguf package: pip install "swindex[detect]"') from exc
    except CheckpointError as exc:
        raise DetectionError(str(exc)) from None


def gguf_artifact(path: str | Path, *, repository: str | None = None, revision: str | None = None) -> Artifact:
    """The artifact record of a GGUF file; a file inside a Hub cache snapshot names its repository and commit itself."""
    snapshot_id, snapshot_sha = parse_snapshot(Path(path).parent)
    return Artifact(
        file=Path(path).name,
        sha256=file_sha256(path),
        format="gguf",
        quantization=gguf_header(path).quantization,
        repository=repository or snapshot_id,
        revision=revision or snapshot_sha,
    )


def _load_gguf(
    file: Path,
    source: str,
    *,
    revision: str | None,
    dtype: str,
    device: str,
    offload_folder: str | Path | None,
    max_memory: dict[Any, Any] | None,
    with_tokenizer: bool,
) -> LoadedModel:
    """Load a GGUF file through transformers (every tensor dequantized), recording the file as the artifact.

    `revision` is the commit of the repository the file comes from: recorded with the artifact, never fetched. The
    model's own id and revision stay unknown (None): a GGUF copy is filed under its base model by the caller.
    """
    if revision is not None and not is_commit_sha(revision):
        raise DetectionError(
            f"{source} is a local GGUF file, so --revision {revision!r} cannot select anything: "
            "give the full 40-character commit sha "
            "of the repository it comes from (it is recorded with the file, not fetched)"
        )
    artifact = gguf_artifact(file, revision=revision)
    if revision is not None and artifact.revision != revision:
        raise DetectionError(f"{source} lies in the Hub cache snapshot of revision {artifact.revision}, not {revision}")
    folder, name = str(file.parent), file.name
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(folder, gguf_file=name)
    except ImportError as exc:
        raise DetectionError(
            f'loading {source} needs the gguf package: pip install "swindex[detect]" ({one_line(exc)})'
        ) from exc
    except (ValueError, OSError, KeyError) as exc:
        raise DetectionError(
            f"cannot read the GGUF header of {source} as a transformers config: {one_line(exc)}"
        ) from exc
    placed = resolve_device(device)
    cls = model_class(config)
    parameters = count_parameters(config, cls) if placed == "cpu" else None
    chosen, notes = choose_dtype(config, dtype, placed, parameters, max_memory)
    notes.append(f"dequantized from {artifact.describe()}")
    kwargs: dict[str, Any] = {"dtype": torch_dtype(chosen), "gguf_file": name, "config": config}
    placement = _placement(placed, chosen, parameters, offload_folder, max_memory)
    model, offloaded = _instantiate(
        cls,
        folder,
        kwargs,
        placement,
        placed,
        notes,
        refused=(OSError, ValueError, NotImplementedError),
        what=f"the GGUF file {source}",
    )
    tokenizer = None
    if with_tokenizer:
        tokenizer, missing = _gguf_tokenizer(folder, name)
        notes.extend([missing] if missing else [])
    options = {
        "revision": revision,
        "device": device,
        "trust_remote_code": False,
        "offload_folder": offload_folder,
        "max_memory": max_memory,
    }
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=source,
        model_id=None,
        revision=None,
        dtype=chosen,
        device=placed,
        offloaded=offloaded,
        notes=tuple(notes),
        options=options,
        artifact=artifact,
    )


def _gguf_tokenizer(folder: str, name: str) -> tuple[Any | None, str | None]:
    """The tokenizer a GGUF header carries (None and a note when it carries one that transformers cannot build)."""
    if not gguf_header(Path(folder) / name).has_tokenizer:
        return None, None
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as exc:  # noqa: BLE001 - token ids still work; the note says what went wrong
        reason = f"{type(exc).__name__}: {one_line(exc, 200)}"
        return None, f"tokenizer not loaded from the GGUF header ({reason}); {_TOKEN_IDS}"
    return _real_tokenizer(tokenizer, "GGUF tokenizer")
