"""The detector: find every super weight of a transformers model from a single short input.

Method (Yu et al. 2024, generalised). Each *pass* is one forward over the input with hooks on every FFN
down projection (`hooks.Recorder`) that keep per projection only the largest |input| and |output| (signed
value, token, channel), their medians, and the largest products weight x input behind the output spike.

1. Scan the projections in forward order. The first layer holding a *spike* (see `Thresholds`: absolute
   and relative to that projection's median) with outlier weights whose product makes up at least
   ``min_share`` of it yields those weights as super weights (row = spike channel, column = input channel; for fused
   experts also the expert).
2. Zero them (in the computation: parameters are never written, so they stay bit for bit as loaded) and
   run the next pass from that layer only, starting from the cached layer input (`hooks.LayerReplay`);
   earlier layers cannot change, so their observations are reused.
3. Stop when a pass shows no spike with a qualifying weight (``stop_reason`` "no spike left"), or after
   ``max_iterations`` passes ("iteration cap", noted in the entry). Weights found in a later layer are
   therefore those whose spike survives the removal of every earlier one, as in the paper.

Mixture-of-Experts: fused experts (transformers 5 keeps them in 3-D parameters that no module hook sees)
are observed by temporarily replacing the experts module's forward with an equivalent one that runs
each expert explicitly; an expert's output is taken before its routing weight, over the tokens routed to
it, and the super weight's index is [expert, row, column] in the stored parameter.

Inputs: ``input_ids`` as given; else ``prompt`` (default `DEFAULT_PROMPT`) through the model's tokenizer
with its BOS token prepended if the tokenizer did not add one; else, for checkpoints without a tokenizer,
`default_input_ids`: BOS then `DEFAULT_LENGTH` - 1 fixed ids spread over the vocabulary.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import inspect
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ActivationOverflowError, DetectionError
from ..loading import context_length
from .arch import ModelLayout, locate
from .hooks import LayerReplay, Observation, Recorder
from .result import DetectedWeight, DetectionResult, LayerMaxima, Thresholds

DEFAULT_PROMPT = "Apple Inc. is a worldwide tech company."
DEFAULT_LENGTH = 16
MAX_ITERATIONS = 64
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class _Scan:
    layout: ModelLayout
    found: tuple[DetectedWeight, ...]
    first: tuple[Observation, ...]
    iterations: int
    stop_reason: str
    replayed: bool


def default_input_ids(config: Any, length: int = DEFAULT_LENGTH) -> list[int]:
    """BOS (the config's, else 0) then ids spread evenly over the vocabulary, for models without a tokenizer."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab = int(getattr(text, "vocab_size", 0) or 0)
    if vocab < 4:
        raise DetectionError("the model config has no usable vocab_size; pass input ids explicitly (--input-ids)")
    specials = {int(i) for name in ("bos_token_id", "eos_token_id", "pad_token_id") for i in _token_ids(getattr(text, name, None))}
    bos = _token_ids(getattr(text, "bos_token_id", None))
    ids = [int(bos[0]) if bos else 0]
    step = max(1, vocab // length)
    candidate = 3
    while len(ids) < length:
        if candidate % vocab not in specials:
            ids.append(candidate % vocab)
        candidate += step
        if candidate > 3 + step * (length + vocab):  # only special ids left to pick from
            raise DetectionError("the model config's vocabulary holds only special token ids; pass input ids explicitly (--input-ids)")
    return ids


def _token_ids(value: Any) -> list[Any]:
    """A config's special token id field as a list: None, one id, or several (Llama 3 lists several EOS ids)."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resolve_input_ids(config: Any, tokenizer: Any | None, prompt: str | None, input_ids: Any | None) -> tuple[list[int], str | None]:
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
        raise DetectionError("this model has no tokenizer, so a prompt cannot be used; pass token ids instead (--input-ids 1,2,3)")
    else:
        limit = context_length(config)
        result, used = default_input_ids(config, DEFAULT_LENGTH if limit is None else min(DEFAULT_LENGTH, limit)), None
    limit = context_length(config)
    if limit is not None and len(result) > limit:
        what = "the prompt's tokens" if used is not None else "the input ids"
        raise DetectionError(f"{what} ({len(result)}) are more than this model can read ({limit} positions); pass at most {limit}")
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
    max_iterations: int = MAX_ITERATIONS,
    model_id: str | None = None,
) -> DetectionResult:
    """Find every super weight of a model (Hub id, local directory, or an already loaded transformers model).

    A loaded model is scanned as it is (dtype and placement untouched, `dtype` and `device` ignored;
    `revision` is recorded as given). A model loaded here in float16 whose activations overflow is reloaded in a wider
    dtype, and the entry says so.
    """
    import torch

    from .. import __version__
    from ..loading import dtype_name, fallback_dtype, load_model, reload_in

    thresholds = thresholds or Thresholds()
    if max_iterations < 1:
        raise DetectionError("max_iterations must be at least 1")
    notes: list[str] = []
    loaded = None
    if isinstance(model_or_id, (str, Path)):
        loaded = load_model(str(model_or_id), revision=revision, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
        model, tokenizer = loaded.model, tokenizer or loaded.tokenizer
        notes.extend(loaded.notes)
        source, found_id, found_revision = str(model_or_id), loaded.model_id, loaded.revision
    elif isinstance(model_or_id, torch.nn.Module) and hasattr(model_or_id, "config"):
        model = model_or_id
        source = str(getattr(model.config, "_name_or_path", "") or type(model).__name__)
        found_id, found_revision = _origin(source, revision)
    else:
        raise DetectionError(f"detect() takes a model id, a local directory or a loaded transformers model, not {type(model_or_id).__name__}")

    ids, used_prompt = resolve_input_ids(model.config, tokenizer, prompt, input_ids)
    try:
        scan = _scan(model, ids, thresholds, max_iterations)
    except ActivationOverflowError as exc:
        wider = fallback_dtype(loaded.dtype, loaded.device) if loaded is not None else None
        if wider is None:
            raise ActivationOverflowError(f"{exc}; load the model in bfloat16 or float32 (--dtype bfloat16)") from exc
        scan = None  # reload outside this block: the exception's traceback still references the float16 model
    if scan is None:
        notes.append(f"float16 activations overflowed (inf/nan); rescanned in {wider}")
        described = dataclasses.replace(loaded, model=None)
        loaded = model = None  # release the float16 weights before the wider copy loads
        gc.collect()
        loaded = reload_in(described, wider)
        model = loaded.model
        scan = _scan(model, ids, thresholds, max_iterations)
    if not scan.replayed:
        notes.append("layers are not chained through a cached residual stream here; every pass reran the whole model")

    layout = scan.layout
    config = model.config
    architecture = (getattr(config, "architectures", None) or [type(model).__name__])[0]
    first_param = next(model.parameters())
    return DetectionResult(
        super_weights=scan.found,
        layers=tuple(_maxima(layout, o) for o in scan.first),
        source=source,
        model_id=model_id or found_id,
        architecture=architecture,
        family=getattr(config, "model_type", None) or None,
        parameters=sum(p.numel() for p in model.parameters()),
        revision=found_revision,
        dimensions=layout.dimensions(),
        dtype=dtype_name(first_param.dtype),
        device=loaded.device if loaded is not None else _device_of(model),
        prompt=used_prompt,
        input_ids=tuple(ids),
        thresholds=thresholds,
        iterations=scan.iterations,
        stop_reason=scan.stop_reason,
        date=_today(),
        tool=f"swindex {__version__}",
        notes=tuple(notes),
    )


def _scan(model: Any, ids: list[int], thresholds: Thresholds, max_iterations: int) -> _Scan:
    """Run passes until no qualifying spike is left; the model's parameters are never written."""
    import torch

    layout = locate(model)
    recorder = Recorder(layout)
    replay = LayerReplay(layout.layers)
    run = _runner(model, layout)
    batch = torch.tensor([ids], dtype=torch.long, device=_input_device(model))
    found: list[DetectedWeight] = []
    with torch.inference_mode(), recorder.installed():
        with replay.capturing():
            run(batch)
        first = _ordered(recorder, layout)
        bad = next((o for o in first if not o.finite), None)
        if bad is not None:
            site = layout.sites[bad.site]
            raise ActivationOverflowError(f"activations overflowed (inf/nan) at {site.path} in {_dtype_text(model)}")
        iteration = 1
        while True:
            hits = [h for h in _qualifying(layout, _ordered(recorder, layout), thresholds, iteration) if not recorder.zeroed(h[0], h[1].row, h[1].column, h[1].expert)]
            if not hits:
                stop = "no spike left"
                break
            for site_index, weight in hits:
                found.append(weight)
                recorder.zero(site_index, weight.row, weight.column, weight.expert)
            if iteration >= max_iterations:
                stop = f"iteration cap ({max_iterations}) reached; more super weights may remain"
                break
            iteration += 1
            start = min(layout.sites[s].layer for s, _ in hits)
            recorder.forget(0 if not replay.chained else start)
            if replay.chained:
                replay.run_from(start)
            else:
                run(batch)
    return _Scan(layout, tuple(found), tuple(first), iteration, stop, replay.chained)


def _qualifying(layout: ModelLayout, observations: list[Observation], thresholds: Thresholds, iteration: int) -> list[tuple[int, DetectedWeight]]:
    """The super weights behind the earliest layer's qualifying spike(s), per the documented thresholds."""
    hits: list[tuple[int, DetectedWeight]] = []
    for obs in observations:
        site = layout.sites[obs.site]
        if hits and site.layer != layout.sites[hits[0][0]].layer:
            break
        spike = abs(obs.output_max)
        ratio = spike / obs.output_median if obs.output_median > 0 else float("inf")
        if spike < thresholds.min_output or ratio < thresholds.min_output_ratio:
            continue
        for c in obs.contributions:
            share = c.product / obs.output_max
            weight_ratio = abs(c.weight) / obs.row_median if obs.row_median > 0 else float("inf")
            if share < thresholds.min_share or weight_ratio < thresholds.min_weight_ratio:
                continue
            expert = obs.expert if site.kind == "experts" else site.expert
            hits.append((obs.site, DetectedWeight(
                layer=site.layer,
                tensor=site.tensor,
                row=obs.output_channel,
                column=c.column,
                expert=expert,
                index=site.index(obs.output_channel, c.column, obs.expert) if site.kind == "experts" else site.index(obs.output_channel, c.column),
                value=c.weight,
                value_dtype=_param_dtype(site.module, site.kind),
                iteration=iteration,
                token=obs.output_token,
                input_activation=c.input,
                output_activation=obs.output_max,
                contribution=c.product,
                share=share,
                output_ratio=min(ratio, 1e12),
                weight_ratio=min(weight_ratio, 1e12),
            )))
    return hits


def _ordered(recorder: Recorder, layout: ModelLayout) -> list[Observation]:
    missing = [layout.sites[i].path for i in range(len(layout.sites)) if i not in recorder.observations]
    if missing and len(missing) == len(layout.sites):
        raise DetectionError("the forward pass reached no FFN down projection; is this model's forward supported?")
    return [recorder.observations[i] for i in range(len(layout.sites)) if i in recorder.observations]


def _maxima(layout: ModelLayout, obs: Observation) -> LayerMaxima:
    site = layout.sites[obs.site]
    return LayerMaxima(
        layer=site.layer, tensor=site.tensor, expert=obs.expert if site.kind == "experts" else site.expert,
        input_max=obs.input_max, input_channel=obs.input_channel, input_token=obs.input_token, input_median=obs.input_median,
        output_max=obs.output_max, output_channel=obs.output_channel, output_token=obs.output_token, output_median=obs.output_median,
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
    from ..loading import is_commit_sha, parse_snapshot

    if revision is not None and not is_commit_sha(revision):
        raise DetectionError(
            f"revision {revision!r} given for the loaded model {name_or_path} is recorded in the entry, which needs a full 40-character commit sha; "
            "pass the sha the model was loaded from (or pass the model id with revision= so that detect loads it and resolves the sha)"
        )
    snapshot_id, sha = parse_snapshot(name_or_path) if Path(name_or_path).is_dir() else (None, None)
    if snapshot_id is not None:
        return snapshot_id, revision or sha
    if not Path(name_or_path).exists() and _HUB_ID.match(name_or_path):
        return name_or_path, revision
    return None, revision


def _today() -> str:
    """SWINDEX_TODAY when it holds a YYYY-MM-DD date (reproducible runs, as the builder uses), else today."""
    value = os.environ.get("SWINDEX_TODAY", "")
    try:
        return _dt.date.fromisoformat(value).isoformat()
    except ValueError:
        return _dt.date.today().isoformat()


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
    from ..loading import dtype_name

    weight = module.down_proj if kind == "experts" else module.weight
    return dtype_name(weight.dtype)


def _dtype_text(model: Any) -> str:
    return str(next(model.parameters()).dtype).replace("torch.", "")
