"""The passes verification decides on: the model as loaded, each claim zeroed alone, all zeroed, all zeroed with
the super activation restored, and a control; run the plain way or the fast way (`fast.py`).

The plain way zeroes the weights in place and runs the whole evaluation for every ablation. The fast way
starts each pass at the first layer it changes and stacks several single-weight ablations into one forward
pass; it gives the same figures to within float rounding, and falls back to the plain way (saying why) where
a shortcut does not apply. Every change to the model is undone bit for bit before the next pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import VerificationError
from ..surgery import Channel, Target, resolve_name, zeroed
from .fast import (
    CACHE_BYTES,
    Layers,
    Recorder,
    StackedWeight,
    ablating,
    close,
    layers_for_shortcuts,
    stack_size,
    stacked_weight,
    starting_at,
)
from .inputs import Inputs, input_device
from .measure import Pass, PerCall, batches, encoder_passes, lm_passes, restoring

FORWARD_OVERHEAD = {"cpu": 0.0, "accelerator": 2.0}
"""What one forward pass costs beyond its copies' share, counted in copies. On CPU a batch of 4 sequences already
keeps the cores busy (SmolLM2-135M, 8 x 128 tokens: 4 ablations stacked took as long as the 4 run one by one),
so there ablations run from their own layers; an accelerator's pass at these sizes is mostly fixed cost, so
there stacking is nearly free."""

RESTORE_FRACTION = 0.5
"""Positions whose original |output| in the super channel reaches this share of its largest are restored."""

METHODS = ("auto", "fast", "plain")
"""``auto``: the shortcuts that apply to the model and pay on its device (on CPU: starting at the ablated layer;
on an accelerator also stacking); ``fast``: every shortcut that applies; ``plain``: the whole model every time."""


@dataclass(frozen=True)
class Evaluation:
    """What every pass runs on: the model, its inputs and how they are scored."""

    model: Any = field(repr=False)
    inputs: Inputs
    causal: bool
    batch_size: int
    stop_ids: tuple[int, ...] = ()
    name: str = "the model"

    @property
    def rows(self) -> int:
        """Sequences per forward call (encoders take at least 16)."""
        return self.batch_size if self.causal else max(self.batch_size, 16)

    def passes(self, *, copies: int = 1, around: PerCall | None = None, channels: Sequence[Channel] = (), stops: bool = False) -> tuple[Pass, ...]:
        """One pass over the inputs per stacked copy."""
        if self.causal:
            stop_ids = self.stop_ids if stops else ()
            return lm_passes(self.model, self.inputs, batch_size=self.rows, stop_ids=stop_ids, channels=channels, copies=copies, around=around)
        return encoder_passes(self.model, self.inputs, batch_size=self.rows, channels=channels, copies=copies, around=around)


@dataclass(frozen=True)
class Ablation:
    """One claimed weight: the scalar to zero and the channel it writes (its super activation's)."""

    target: Target
    channel: Channel


@dataclass(frozen=True)
class Method:
    """Which way the passes ran, in a sentence for the report."""

    name: str  # "fast" or "plain"
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass(frozen=True)
class Measured:
    """Every pass verification ran; ``alone[i]`` belongs to the i-th ablation."""

    original: Pass
    alone: tuple[Pass, ...]
    together: Pass | None
    restored: Pass | None
    control: Pass | None
    method: Method
    notes: tuple[str, ...] = ()


Say = Callable[[str], None]


def measure(
    evaluation: Evaluation, ablations: Sequence[Ablation], control: Sequence[Target], *, method: str = "auto", say: Say = lambda message: None
) -> Measured:
    """Run the original pass, each ablation alone, all together, all with the super activation restored, and the control."""
    if method not in METHODS:
        raise VerificationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "plain":
        return _plain(evaluation, ablations, control, say, "every pass runs the whole model (asked for)")
    layers, why = layers_for_shortcuts(evaluation.model)
    if layers is None:
        return _plain(evaluation, ablations, control, say, f"every pass runs the whole model: {why}")
    return _fast(evaluation, ablations, control, layers, say, stack_anyway=method == "fast")


def _check_original(evaluation: Evaluation, original: Pass) -> None:
    model = evaluation.model
    base = original.perplexity
    if evaluation.causal and base is not None and not math.isfinite(base) and str(next(model.parameters()).dtype) == "torch.float16":
        raise VerificationError(
            f"{evaluation.name}: the unmodified model's perplexity is {base} in float16, so nothing can be compared with it; "
            "load it in bfloat16 or float32 (--dtype bfloat16), float16 activations often overflow"
        )


def _unique_channels(ablations: Sequence[Ablation]) -> list[Channel]:
    return list(dict.fromkeys(a.channel for a in ablations))


def _replacements(original: Pass, wanted: Sequence[Channel]) -> dict[Channel, list[tuple[Any, Any]]]:
    """Per channel and forward call: where the original pass had the super activation (mask) and its values."""
    result = {}
    for ch in wanted:
        values = original.channels.get(ch) or []
        peak = max((float(v.abs().max()) for v in values if v.numel()), default=0.0)
        if peak == 0.0:
            continue
        result[ch] = [((v.abs() >= RESTORE_FRACTION * peak), v) for v in values]
    return result


def _joint(
    evaluation: Evaluation,
    ablations: Sequence[Ablation],
    control: Sequence[Target],
    original: Pass,
    alone: Sequence[Pass],
    say: Say,
    around: Callable[[str], PerCall | None],
) -> tuple[Pass | None, Pass | None, Pass | None, tuple[str, ...]]:
    """All zeroed, all zeroed with the super activation restored, and the control; ``around(kind)`` places each pass."""
    if not ablations:
        return None, None, None, ("the entry claims no super weight: only the original figure was measured",)
    model, notes = evaluation.model, []
    restored = None
    with zeroed(model, [a.target for a in ablations]):
        if len(ablations) == 1:  # the one weight zeroed alone is all of them zeroed (scored with the stop ids)
            together = alone[0]
        else:
            say("all zeroed")
            together = evaluation.passes(around=around("together"), stops=True)[0]
        replacements = _replacements(original, _unique_channels(ablations))
        if replacements:
            say("all zeroed, super activation restored")
            with restoring(model, replacements):
                restored = evaluation.passes(around=around("together"))[0]
        else:
            notes.append("no super activation recorded in the claimed channels: nothing to restore")
    say("control")
    with zeroed(model, list(control)):
        control_pass = evaluation.passes(around=around("control"))[0] if control else None
    return together, restored, control_pass, tuple(notes)


def _plain(evaluation: Evaluation, ablations: Sequence[Ablation], control: Sequence[Target], say: Say, why: str) -> Measured:
    say("original")
    original = evaluation.passes(channels=_unique_channels(ablations), stops=True)[0]
    _check_original(evaluation, original)
    alone = []
    for a in ablations:
        say(f"zeroing {a.target.coordinate}")
        with zeroed(evaluation.model, [a.target]):
            alone.append(evaluation.passes(channels=[a.channel], stops=len(ablations) == 1)[0])
    together, restored, control_pass, notes = _joint(evaluation, ablations, control, original, alone, say, lambda kind: None)
    return Measured(original=original, alone=tuple(alone), together=together, restored=restored, control=control_pass, method=Method("plain", why), notes=notes)


@dataclass(frozen=True)
class _Group:
    """Ablations that share forward passes: stacked (hooks) or a single one zeroed in place."""

    start: int
    members: tuple[int, ...]
    stacked: tuple[StackedWeight, ...] = ()


def _start(layers: Layers, model: Any, tensor: str) -> int:
    return layers.index_of(resolve_name(model, tensor).rsplit(".", 1)[0]) or 0


def _groups(starts: Sequence[int], stackable: Sequence[StackedWeight | None], size: int, depth: float, overhead: float) -> list[_Group]:
    """Stackable ablations in layer order, cut into runs of at most ``size`` that share a forward pass; the rest alone.

    A run starts at its earliest layer, so stacking a late ablation with an early one costs it the layers
    in between. The cut minimises the estimated work, sum over runs of (layers run) x (copies + ``overhead``),
    with ``depth`` the layer count plus the head's cost in layers (see `FORWARD_OVERHEAD`).
    """
    alone = [_Group(starts[i], (i,)) for i in range(len(starts)) if stackable[i] is None or size == 1]
    order = sorted((i for i in range(len(starts)) if stackable[i] is not None and size > 1), key=lambda i: (starts[i], i))
    best = [0.0] + [math.inf] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for begin in range(end - 1, max(0, end - size) - 1, -1):  # shortest run first: no stacking unless it saves work
            cost = best[begin] + (depth - starts[order[begin]]) * (overhead + end - begin)
            if cost < best[end] * (1 - 1e-9):  # a tie within rounding is not a saving
                best[end], cut[end] = cost, begin
    runs = []
    end = len(order)
    while end > 0:
        members = order[cut[end] : end]
        stacked = tuple(stackable[i] for i in members) if len(members) > 1 else ()  # alone, zeroing in place is as cheap
        runs.append(_Group(starts[members[0]], tuple(members), stacked))  # type: ignore[arg-type]
        end = cut[end]
    return sorted(alone + runs, key=lambda g: (g.start, g.members))


def _depth(model: Any, layers: Layers, causal: bool) -> float:
    """The model's layer count plus its LM head's cost counted in layers (by parameters)."""
    per_layer = sum(p.numel() for p in layers.modules[0].parameters()) or 1
    head = model.get_output_embeddings() if causal else None
    return len(layers.modules) + (head.weight.numel() / per_layer if head is not None else 0.0)


@contextmanager
def _last_layer_output(layers: Layers, into: list[Any]) -> Iterator[None]:
    def hook(module: Any, args: Any, output: Any) -> None:
        if not into:  # the first forward call is all the checks compare
            into.append((output[0] if isinstance(output, tuple) else output).detach().float().cpu())

    handle = layers.modules[-1].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _one_row(evaluation: Evaluation, layers: Layers, start: int, recorded: Any, copies: int) -> Any:
    """The last layer's output for the first sequence, run from ``start`` on ``recorded``, ``copies`` times stacked."""
    import torch

    ids, mask = next(batches(evaluation.inputs, evaluation.rows))
    ids, mask = ids[:1].repeat(copies, 1), None if mask is None else mask[:1].repeat(copies, 1)
    if isinstance(recorded, tuple):
        recorded = (recorded[0][:1], *recorded[1:])
    elif recorded is not None:
        recorded = recorded[:1]
    seen: list[Any] = []
    device = input_device(evaluation.model)
    with torch.no_grad(), _last_layer_output(layers, seen), starting_at(layers, start, recorded, copies):
        kwargs = {"use_cache": False} if evaluation.causal else {"attention_mask": None if mask is None else mask.to(device)}
        evaluation.model(input_ids=ids.to(device), **kwargs)
    return seen[-1]


def _fast(
    evaluation: Evaluation, ablations: Sequence[Ablation], control: Sequence[Target], layers: Layers, say: Say, stack_anyway: bool = False
) -> Measured:
    model = evaluation.model
    dtype = next(model.parameters()).dtype
    starts = [_start(layers, model, a.target.tensor) for a in ablations]
    together_start = min(starts, default=0)
    control_start = min((_start(layers, model, t.tensor) for t in control), default=0)
    off: list[str] = []

    size = 1
    if layers.routed:
        off.append("one ablation per forward pass: expert routing may depend on the other rows of a batch")
    else:
        size = stack_size(model, evaluation.causal, evaluation.rows, int(evaluation.inputs.input_ids.shape[1]))
        if size == 1:
            off.append("one ablation per forward pass: two stacked copies would exceed the memory budget")
    stackable = [stacked_weight(model, a.target, a.channel) if size > 1 else None for a in ablations]
    depth = _depth(model, layers, evaluation.causal)
    overhead = FORWARD_OVERHEAD["cpu" if input_device(model).type == "cpu" and not stack_anyway else "accelerator"]
    groups = _groups(starts, stackable, size, depth, overhead)

    hidden = int(getattr(model.get_input_embeddings(), "embedding_dim", 0) or model.get_input_embeddings().weight.shape[-1])
    wanted = sorted(({g.start for g in groups} | {together_start, control_start}) - {0})
    estimate = len(wanted) * evaluation.inputs.input_ids.numel() * hidden * next(model.parameters()).element_size()
    if estimate > CACHE_BYTES:
        off.append(f"every pass starts at layer 0: the recorded residual stream would take {estimate / 2**30:.1f} GiB")
        wanted = []
    recorder = Recorder(layers, wanted)
    reference: list[Any] = []

    say("original" + (" (recording the residual stream)" if wanted else ""))
    with recorder.recording(), _last_layer_output(layers, reference):
        original = evaluation.passes(channels=_unique_channels(ablations), stops=True, around=recorder.call)[0]
    _check_original(evaluation, original)

    skip = bool(wanted) and recorder.problem is None
    if wanted and recorder.problem is not None:
        off.append(f"every pass starts at layer 0: {recorder.problem}")
    latest = max(wanted, default=0)
    first = reference[0][:1]
    if skip and not close(first, _one_row(evaluation, layers, latest, recorder.outputs[latest][0], 1), dtype):
        skip = False
        off.append(f"every pass starts at layer 0: starting at layer {latest} changed the model's output")
    if any(g.stacked for g in groups):
        start = latest if skip else 0
        twice = _one_row(evaluation, layers, start, recorder.outputs[start][0] if start else None, 2)
        if not (close(first, twice[:1], dtype) and close(first, twice[1:], dtype)):
            groups = _groups(starts, [None] * len(ablations), 1, depth, overhead)
            off.append("one ablation per forward pass: stacking copies of the inputs changed the model's output")
    del reference

    def around(start: int, copies: int = 1) -> PerCall | None:
        if not skip or start == 0:
            return None
        return lambda k: starting_at(layers, start, recorder.outputs[start][k], copies)

    alone: list[Pass | None] = [None] * len(ablations)
    for group in groups:
        members = [ablations[i] for i in group.members]
        with ExitStack() as stack:
            if group.stacked:
                say(f"zeroing {', '.join(m.target.coordinate for m in members)} (one pass)")
                stack.enter_context(ablating(model, group.stacked))
            else:
                say(f"zeroing {members[0].target.coordinate}")
                stack.enter_context(zeroed(model, [members[0].target]))
            passes = evaluation.passes(
                copies=len(members), around=around(group.start, len(members)), channels=[m.channel for m in members], stops=len(ablations) == 1
            )
        for i, p in zip(group.members, passes):
            alone[i] = p
    measured_alone = tuple(p for p in alone if p is not None)

    placed = {"together": around(together_start), "control": around(control_start)}
    together, restored, control_pass, notes = _joint(evaluation, ablations, control, original, measured_alone, say, lambda kind: placed[kind])

    used = []
    if skip:
        used.append("each pass starts at the first layer it changes, from the recorded residual stream")
    most = max((len(g.members) for g in groups if g.stacked), default=1)
    if most > 1:
        used.append(f"up to {most} single-weight ablations share each forward pass")
    method = Method("fast", "; ".join(used + off)) if used else Method("plain", "every pass runs the whole model: " + "; ".join(off or ["no ablation to shorten"]))
    return Measured(original=original, alone=measured_alone, together=together, restored=restored, control=control_pass, method=method, notes=notes)


__all__ = ["METHODS", "RESTORE_FRACTION", "Ablation", "Evaluation", "Measured", "Method", "measure"]
