"""The detector: find a model's super-weight *candidates* from a single short input, in about one forward pass.

What counts (Yu et al. 2024, generalised; the thresholds are `Thresholds`). Hooks on every FFN down projection
(`hooks.Recorder`) keep per projection only the largest |input| and |output| (signed value, token, channel),
their medians, and the largest products weight x input behind the output spike. A *spike* qualifies when it
is massive for this model: at least the paper's absolute threshold, at least ``min_output_ratio`` times its
projection's median |output|, and at least ``min_scale`` of the largest down-projection output the scan has
seen (the model's own massive activation, which ordinary outliers of ~100x their layer's median stay far
below). A weight whose product with its input makes up at least ``min_share`` of a qualifying spike is a
*candidate*, whatever its size within its row; only after a candidate's column has been removed at that
projection must another weight of the same column stand out of it (``min_column_ratio``), since the rest of
a column merely passes the same huge input on. Candidates are grouped by the massive channel (row) they feed;
whether they matter is for verification to measure.

Search. Layers are scanned in forward order and candidates are removed *as they are found*: the hook removes
them (in the computation; parameters are never written, so they stay bit for bit as loaded), observes the
same projection again (another weight of the same spike, or the next spike there) and lets the pass go on,
so later layers see the model without every earlier candidate, as the paper's iteration does, without a
rerun. The scale can only grow during a pass, so a candidate found before a larger spike appeared may turn
out too small for this model: the pass then ends at that larger spike, and the next one starts at the
candidate's layer without it; earlier layers cannot change, so they answer from their cached outputs
(`hooks.LayerCache`) instead of running. The search stops when a pass leaves no candidate below the final
scale (``stop_reason`` "no spike left"), or at a safety cap on passes or candidates (recorded in the entry).
Work is counted in layer evaluations (layers that ran); L of them make one full pass of an L-layer model.

Mixture-of-Experts: fused experts (transformers 5 keeps them in 3-D parameters that no module hook sees)
are observed by temporarily replacing the experts module's forward with an equivalent one that runs
each expert explicitly; an expert's output is taken before its routing weight, over the tokens routed to
it, and the candidate's index is [expert, row, column] in the stored parameter.

Inputs: ``input_ids`` as given; else ``prompt`` (default `DEFAULT_PROMPT`) through the model's tokenizer
with its BOS token prepended if the tokenizer did not add one; else, for checkpoints without a tokenizer,
`default_input_ids`: BOS then `DEFAULT_LENGTH` - 1 fixed ids spread over the vocabulary.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ActivationOverflowError, DetectionError
from ..loading import context_length
from ..records import Coordinate
from .arch import ModelLayout, locate
from .hooks import LayerCache, Observation, Recorder, Removal, column_median
from .result import DetectedWeight, DetectionResult, LayerMaxima, Peak, Thresholds

DEFAULT_PROMPT = "Apple Inc. is a worldwide tech company."
DEFAULT_LENGTH = 16
MAX_PASSES = 16
MAX_CANDIDATES = 64
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class _Scan:
    layout: ModelLayout
    found: tuple[DetectedWeight, ...]
    layers: tuple[Observation, ...]
    passes: int
    layer_evaluations: int
    peak: Peak
    stop_reason: str


@dataclass
class _Search:
    """The mutable state of one scan (private to `_scan`): what was found and the largest output seen so far."""

    found: list[tuple[int, DetectedWeight]] = field(default_factory=list)
    peak: Peak = field(default_factory=lambda: Peak(0.0, 0, 0, 0, None))
    pass_number: int = 1
    capped: bool = False


def default_input_ids(config: Any, length: int = DEFAULT_LENGTH) -> list[int]:
    """BOS (the config's, else 0) then ids spread evenly over the vocabulary, for models without a tokenizer."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab = int(getattr(text, "vocab_size", 0) or 0)
    if vocab < 4:
        raise DetectionError("the model config has no usable vocab_size; pass input ids explicitly (--input-ids)")
    specials = {
        int(i)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id")
        for i in _token_ids(getattr(text, name, None))
    }
    bos = _token_ids(getattr(text, "bos_token_id", None))
    ids = [int(bos[0]) if bos else 0]
    step = max(1, vocab // length)
    candidate = 3
    while len(ids) < length:
        if candidate % vocab not in specials:
            ids.append(candidate % vocab)
        candidate += step
        if candidate > 3 + step * (length + vocab):  # only special ids left to pick from
            raise DetectionError(
                "the model config's vocabulary holds only special token ids; pass input ids explicitly (--input-ids)"
            )
    return ids


def _token_ids(value: Any) -> list[Any]:
    """A config's special token id field as a list: None, one id, or several (Llama 3 lists several EOS ids)."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resolve_input_ids(
    config: Any, tokenizer: Any | None, prompt: str | None, input_ids: Any | None
) -> tuple[list[int], str | None]:
    """The token ids to scan with and the prompt they came from (None when ids were given or defaulted)."""
    if input_ids is not None:
        ids = [int(i) for i in input_ids]
        if not ids:
            raise DetectionError("input ids are empty; pass at least one token id")
        result, used = ids, None
    elif tokenizer is not None:
        used = DEFAULT_PROMPT if prompt is None else prompt
        result = list(tokenizer(used)["input_ids"])
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is not None and (not result or result[0] != bos):
            result.insert(0, int(bos))
        if not result:
            raise DetectionError(f"the tokenizer turned the prompt {used!r} into no tokens; pass a longer prompt")
    elif prompt is not None:
        raise DetectionError(
            "this model has no tokenizer, so a prompt cannot be used; pass token ids instead (--input-ids 1,2,3)"
        )
    else:
        limit = context_length(config)
        result, used = default_input_ids(config, DEFAULT_LENGTH if limit is None else min(DEFAULT_LENGTH, limit)), None
    limit = context_length(config)
    if limit is not None and len(result) > limit:
        what = "the prompt's tokens" if used is not None else "the input ids"
        raise DetectionError(
            f"{what} ({len(result)}) are more than this model can read ({limit} positions); pass at most {limit}"
        )
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab = getattr(text, "vocab_size", None)
    if vocab and any(i < 0 or i >= vocab for i in result):
        raise DetectionError(f"input ids must lie in [0, {vocab}) for this model's vocabulary")
    return result, used


def detect(
    model_or_id: Any,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    prompt: str | None = None,
    input_ids: Any | None = None,
    trust_remote_code: bool = False,
    tokenizer: Any | None = None,
    thresholds: Thresholds | None = None,
    max_passes: int = MAX_PASSES,
    max_candidates: int = MAX_CANDIDATES,
    model_id: str | None = None,
    offload_folder: str | None = None,
    today: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> DetectionResult:
    """Find a model's super-weight candidates (Hub id, local directory, or an already loaded transformers model).

    A loaded model is scanned as it is (dtype and placement untouched, `dtype` and `device` ignored;
    `revision` is recorded as given). A model loaded here in float16 whose activations overflow is reloaded in a wider
    dtype, and the entry says so. ``today`` (YYYY-MM-DD) dates the result, else `swindex.dates.today()`;
    ``progress`` hears each step in a sentence, as `verify`'s does.
    """
    import torch

    from ..dates import parse_date
    from ..loading import load_model

    date = parse_date(today, "today") if today is not None else None
    options = dict(
        prompt=prompt,
        input_ids=input_ids,
        tokenizer=tokenizer,
        thresholds=thresholds,
        max_passes=max_passes,
        max_candidates=max_candidates,
        model_id=model_id,
        today=date,
        progress=progress,
    )
    _check_caps(max_passes, max_candidates)
    if isinstance(model_or_id, (str, Path)):
        if progress:
            progress(f"loading {model_or_id}")
        loaded = load_model(
            str(model_or_id),
            revision=revision,
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
            offload_folder=offload_folder,
        )
        return detect_loaded(loaded, **options)[0]
    if not (isinstance(model_or_id, torch.nn.Module) and hasattr(model_or_id, "config")):
        raise DetectionError(
            "detect() takes a model id, a local directory or a loaded transformers model, not "
            f"{type(model_or_id).__name__}"
        )
    model = model_or_id
    source = str(getattr(model.config, "_name_or_path", "") or type(model).__name__)
    found_id, found_revision = _origin(source, revision)
    try:
        return _detect(
            model,
            tokenizer,
            source,
            found_id,
            found_revision,
            _device_of(model),
            (),
            **{k: v for k, v in options.items() if k != "tokenizer"},
        )
    except ActivationOverflowError as exc:
        raise ActivationOverflowError(f"{exc}; load the model in bfloat16 or float32 (--dtype bfloat16)") from exc


def detect_loaded(
    loaded: Any, *, source: str | None = None, tokenizer: Any | None = None, **options: Any
) -> tuple[DetectionResult, Any]:
    """Scan a model swindex loaded (a `swindex.loading.LoadedModel`), reloading it wider if float16 overflows.

    Returns the result and the LoadedModel it was measured on (the reload, when there was one), so that a caller
    can go on to verify the same model. Options are `detect`'s. The float16 weights are freed before a reload.
    """
    from ..loading import run_widening

    _check_caps(options.get("max_passes", MAX_PASSES), options.get("max_candidates", MAX_CANDIDATES))

    def scan(current: Any) -> DetectionResult:
        return _detect(
            current.model,
            tokenizer or current.tokenizer,
            source or current.source,
            current.model_id,
            current.revision,
            current.device,
            current.notes,
            **options,
        )

    return run_widening(loaded, scan)


def _check_caps(max_passes: int, max_candidates: int) -> None:
    if max_passes < 1 or max_candidates < 1:
        raise DetectionError("max_passes and max_candidates must be at least 1")


def _detect(
    model: Any,
    tokenizer: Any | None,
    source: str,
    found_id: str | None,
    found_revision: str | None,
    device: str,
    notes: tuple[str, ...],
    *,
    prompt: str | None = None,
    input_ids: Any | None = None,
    thresholds: Thresholds | None = None,
    max_passes: int = MAX_PASSES,
    max_candidates: int = MAX_CANDIDATES,
    model_id: str | None = None,
    today: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> DetectionResult:
    from .._dtypes import supported_dtype
    from ..version import tool

    thresholds = thresholds or Thresholds()
    ids, used_prompt = resolve_input_ids(model.config, tokenizer, prompt, input_ids)
    if progress:
        progress(f"scanning {source} on {len(ids)} tokens")
    scan = _scan(model, ids, thresholds, max_passes, max_candidates)
    if progress:
        progress(f"found {len(scan.found)} candidate(s) in {scan.passes} pass(es)")
    layout = scan.layout
    config = model.config
    architecture = (getattr(config, "architectures", None) or [type(model).__name__])[0]
    return DetectionResult(
        candidates=scan.found,
        layers=tuple(_maxima(layout, o) for o in scan.layers),
        source=source,
        model_id=model_id or found_id,
        architecture=architecture,
        family=getattr(config, "model_type", None) or None,
        parameters=sum(p.numel() for p in model.parameters()),
        revision=found_revision,
        dimensions=layout.dimensions(),
        dtype=supported_dtype(next(model.parameters()).dtype),
        device=device,
        prompt=used_prompt,
        input_ids=tuple(ids),
        thresholds=thresholds,
        passes=scan.passes,
        layer_evaluations=scan.layer_evaluations,
        peak=scan.peak,
        stop_reason=scan.stop_reason,
        date=today or _today(),
        tool=tool(),
        notes=tuple(notes),
    )


def _scan(model: Any, ids: list[int], thresholds: Thresholds, max_passes: int, max_candidates: int) -> _Scan:
    """Passes until every candidate is massive for the model's final scale; the model's parameters are never written."""
    import torch

    layout = locate(model)
    search = _Search()
    recorder = Recorder(
        layout,
        lambda index, observation: _decide(layout, search, thresholds, max_passes, max_candidates, index, observation),
    )
    cache = LayerCache(layout.layers)
    run = _runner(model, layout)
    batch = torch.tensor([ids], dtype=torch.long, device=_input_device(model))
    stop = "no spike left"
    with torch.inference_mode(), recorder.installed(), _counting(layout.layers) as calls:
        start = 0
        while True:
            try:
                with cache.active(skip_before=start):
                    run(batch)
            except _Restart:
                pass  # a larger spike showed earlier candidates too small: the rest of this pass would be redone anyway
            if search.pass_number == 1:
                _ordered(recorder, layout)
            weak = _too_small(search, thresholds)
            if not weak or search.capped or search.pass_number >= max_passes:
                if weak and not search.capped:
                    stop = f"pass cap ({max_passes}) reached; candidates may be missing"
                search.found = [f for f in search.found if f not in weak]  # no longer massive for this model
                break
            start = min(weight.layer for _, weight in weak)
            search.found = [(s, w) for s, w in search.found if w.layer < start]
            recorder.restart(start)
            search.pass_number += 1
        if search.capped:
            stop = f"candidate cap ({max_candidates}) reached; more candidates may remain"
    found = tuple(w for _, w in search.found)
    evaluations = calls[0] - cache.skipped
    return _Scan(layout, found, tuple(_ordered(recorder, layout)), search.pass_number, evaluations, search.peak, stop)


class _Restart(Exception):
    """Raised from a hook to end a pass early: a new, larger spike made candidates found earlier too small."""


def _too_small(search: _Search, thresholds: Thresholds) -> list[tuple[int, DetectedWeight]]:
    """Candidates whose spike fell below the model's scale once a larger output turned up later in the pass."""
    floor = thresholds.min_scale * search.peak.value
    return [(s, w) for s, w in search.found if abs(w.output_activation) < floor]


def _decide(
    layout: ModelLayout,
    search: _Search,
    thresholds: Thresholds,
    max_passes: int,
    max_candidates: int,
    index: int,
    obs: Observation,
) -> list[Removal]:
    """The candidates behind one projection's current spike (to be removed at once), per the documented thresholds."""
    site = layout.sites[index]
    if not obs.finite:
        raise ActivationOverflowError(
            f"activations overflowed (inf/nan) at {site.path} in {_param_dtype(site.module, site.kind)}"
        )
    spike = abs(obs.output_max)
    expert = obs.expert if site.kind == "experts" else site.expert
    if spike > search.peak.value:
        search.peak = Peak(spike, site.layer, obs.output_channel, obs.output_token, expert)
        if not search.capped and search.pass_number < max_passes and _too_small(search, thresholds):
            raise _Restart
    ratio = spike / obs.output_median if obs.output_median > 0 else float("inf")
    if (
        search.capped
        or spike < max(thresholds.min_output, thresholds.min_scale * search.peak.value)
        or ratio < thresholds.min_output_ratio
    ):
        return []
    removed_columns = {w.column for s, w in search.found if s == index and w.expert == expert}
    removals: list[Removal] = []
    for c in obs.contributions:
        share = c.product / obs.output_max
        if share < thresholds.min_share:
            continue
        if c.column in removed_columns and abs(c.weight) < thresholds.min_column_ratio * column_median(
            site, c.column, obs.expert
        ):
            continue  # an ordinary weight passing on the input of a column already removed here
        if len(search.found) >= max_candidates:
            search.capped = True
            break
        weight_ratio = abs(c.weight) / obs.row_median if obs.row_median > 0 else float("inf")
        search.found.append(
            (
                index,
                DetectedWeight(
                    location=Coordinate(
                        layer=site.layer,
                        tensor=site.tensor,
                        row=obs.output_channel,
                        column=c.column,
                        expert=expert,
                        index=site.index(obs.output_channel, c.column, obs.expert)
                        if site.kind == "experts"
                        else site.index(obs.output_channel, c.column),
                    ),
                    value=c.weight,
                    value_dtype=_param_dtype(site.module, site.kind),
                    iteration=search.pass_number,
                    token=obs.output_token,
                    input_activation=c.input,
                    output_activation=obs.output_max,
                    contribution=c.product,
                    share=share,
                    output_ratio=min(ratio, 1e12),
                    weight_ratio=min(weight_ratio, 1e12),
                ),
            )
        )
        removals.append((obs.expert if site.kind == "experts" else None, obs.output_channel, c.column))
    return removals


@contextmanager
def _counting(layers: Any) -> Iterator[list[int]]:
    """Count layer calls (those answered from the `LayerCache` are subtracted to give the evaluations)."""
    count = [0]
    handles = [layer.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1)) for layer in layers]
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()


def _ordered(recorder: Recorder, layout: ModelLayout) -> list[Observation]:
    missing = [layout.sites[i].path for i in range(len(layout.sites)) if i not in recorder.observations]
    if missing and len(missing) == len(layout.sites):
        raise DetectionError("the forward pass reached no FFN down projection; is this model's forward supported?")
    return [recorder.observations[i] for i in range(len(layout.sites)) if i in recorder.observations]


def _maxima(layout: ModelLayout, obs: Observation) -> LayerMaxima:
    site = layout.sites[obs.site]
    return LayerMaxima(
        layer=site.layer,
        tensor=site.tensor,
        expert=obs.expert if site.kind == "experts" else site.expert,
        input_max=obs.input_max,
        input_channel=obs.input_channel,
        input_token=obs.input_token,
        input_median=obs.input_median,
        output_max=obs.output_max,
        output_channel=obs.output_channel,
        output_token=obs.output_token,
        output_median=obs.output_median,
    )


def _runner(model: Any, layout: ModelLayout) -> Any:
    """Call the base model (no LM head: its logits are not needed) with caching off."""
    base = getattr(model, "base_model", None)
    target = base if base is not None and any(m is layout.layers for m in base.modules()) else model
    params = inspect.signature(target.forward).parameters
    accepts = "use_cache" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = {"use_cache": False} if accepts else {}

    def run(batch: Any) -> None:
        target(input_ids=batch, **extra)

    return run


def _origin(name_or_path: str, revision: str | None) -> tuple[str | None, str | None]:
    """(Hub id, revision) a loaded model came from, as far as its config's name or cache path tells."""
    from .._hubcache import is_commit_sha, parse_snapshot

    if revision is not None and not is_commit_sha(revision):
        raise DetectionError(
            f"revision {revision!r} given for the loaded model {name_or_path} is recorded in the entry, which needs a "
            "full 40-character commit sha; pass the sha the model was loaded from (or pass the model id with "
            "revision= so that detect loads it and resolves the sha)"
        )
    snapshot_id, sha = parse_snapshot(name_or_path) if Path(name_or_path).is_dir() else (None, None)
    if snapshot_id is not None:
        return snapshot_id, revision or sha
    if not Path(name_or_path).exists() and _HUB_ID.match(name_or_path):
        return name_or_path, revision
    return None, revision


def _today() -> str:
    """SWINDEX_TODAY when set (reproducible runs, as the builder uses), else today;
    a malformed value is an error (swindex.dates)."""
    from ..dates import today

    return today()


def _input_device(model: Any) -> Any:
    import torch

    embeddings = model.get_input_embeddings()
    weight = getattr(embeddings, "weight", None)
    if weight is not None and weight.device.type != "meta":
        return weight.device
    return torch.device("cpu")


def _device_of(model: Any) -> str:
    placement = getattr(model, "hf_device_map", None)
    if placement and len(set(placement.values())) > 1:
        return "auto"
    devices = {p.device.type for p in model.parameters() if p.device.type != "meta"}
    return devices.pop() if len(devices) == 1 else "auto"


def _param_dtype(module: Any, kind: str) -> str:
    from .._dtypes import supported_dtype

    weight = module.down_proj if kind == "experts" else module.weight
    return supported_dtype(weight.dtype)
