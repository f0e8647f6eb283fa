"""The passes verification decides on: the model as loaded, each claim zeroed alone, all zeroed, all zeroed with
the super activation restored, and a control; run the plain way or the fast way (`fast.py`).

The plain way zeroes the weights in place and runs the whole evaluation for every ablation. The fast way
starts each pass at the first layer it changes and stacks several single-weight ablations into one forward
pass; it gives the same figures to within float rounding, and falls back to the plain way (saying why) where
a shortcut does not apply. Either way, a causal LM's claims are each measured alone sequence by sequence
until the class is settled (`settle.py`), unless ``sequential`` is off; the other passes use every sequence.
Every change to the model is undone bit for bit before the next pass.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from .._dtypes import dtype_name
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
    work_budget,
)
from .inputs import Inputs, input_device
from .measure import Pass, PerCall, batches, encoder_passes, lm_passes, restoring
from .settle import MIN_SEQUENCES, Settled, bound

FORWARD_OVERHEAD = {"cpu": 0.0, "accelerator": 2.0}
"""What one forward pass costs beyond its copies' share, counted in copies. On CPU a batch of 4 sequences already
keeps the cores busy (SmolLM2-135M, 8 x 128 tokens: 4 ablations stacked took as long as the 4 run one by one),
so there ablations run from their own layers; an accelerator's pass at these sizes is mostly fixed cost, so
there stacking is nearly free."""

RESTORE_FRACTION = 0.5
"""Positions whose original |output| in the super channel reaches this share of its largest are restored."""

MASSIVE = 50.0
"""A channel whose peak |output| is at least this many times its median holds a super activation (the paper's are
hundreds to thousands of times; an ordinary channel's largest value is a few times its median)."""

CPU_STEP = 2
"""Sequences a settling pass adds per step on CPU after its first step, at least (`_step`)."""

SAME_PEAK = 1e-3
"""Sequences whose largest |value| in a channel lies within this relative distance of its peak hold the same super
activation: a causal LM's first token has the same context in every sequence, so each holds the peak there."""

RARE = 0.25
"""Sequences with an unusual count of super activations join the census only while they are at most this share of the
text: a rare one can hide from a sample, a common one cannot (and a census of most of the text saves nothing)."""

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

    def passes(
        self, *, copies: int = 1, around: PerCall | None = None, channels: Sequence[Channel] = (), stops: bool = False
    ) -> tuple[Pass, ...]:
        """One pass over the inputs per stacked copy."""
        if self.causal:
            stop_ids = self.stop_ids if stops else ()
            return lm_passes(
                self.model,
                self.inputs,
                batch_size=self.rows,
                stop_ids=stop_ids,
                channels=channels,
                copies=copies,
                around=around,
            )
        return encoder_passes(
            self.model, self.inputs, batch_size=self.rows, channels=channels, copies=copies, around=around
        )

    def subset(self, sequences: Sequence[int]) -> "Evaluation":
        """The same evaluation on some of its sequences (in the order given)."""
        index = list(sequences)
        mask = self.inputs.attention_mask
        inputs = Inputs(self.inputs.input_ids[index], None if mask is None else mask[index], self.inputs.source)
        return dataclasses.replace(self, inputs=inputs)

    @property
    def sequences(self) -> int:
        """How many evaluation sequences (or sentences) there are."""
        return int(self.inputs.input_ids.shape[0])


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
    settled: tuple[Settled | None, ...] = ()  # per ablation (causal LMs): its bound and the tokens it took
    joint_settled: dict[str, Settled] = field(default_factory=dict)  # by `JOINT` name, where settled sequentially


Say = Callable[[str], None]


def measure(
    evaluation: Evaluation,
    ablations: Sequence[Ablation],
    control: Sequence[Target],
    *,
    method: str = "auto",
    sequential: bool = True,
    say: Say = lambda message: None,
) -> Measured:
    """Run the original pass, each ablation alone, all together, all with the super activation restored, the control.

    ``sequential``: a causal LM's single-weight ablations run sequence by sequence and stop once the weight's class is
    settled (`swindex.verification.settle`); otherwise each runs on every sequence.
    """
    if method not in METHODS:
        raise VerificationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    settling = _Settling(
        alone=sequential and evaluation.causal and len(ablations) > 1,  # one weight alone is all zeroed: the whole text
        joint=sequential and evaluation.causal,
    )
    if method == "plain":
        return _plain(evaluation, ablations, control, say, "every pass runs the whole model (asked for)", settling)
    layers, why = layers_for_shortcuts(evaluation.model)
    if layers is None:
        return _plain(evaluation, ablations, control, say, f"every pass runs the whole model: {why}", settling)
    return _fast(evaluation, ablations, control, layers, say, stack_anyway=method == "fast", settling=settling)


@dataclass(frozen=True)
class _Settling:
    """Which passes run sequence by sequence until settled: the single-weight ablations, and the joint passes."""

    alone: bool = False
    joint: bool = False

    def __str__(self) -> str:
        """The method's clause saying so."""
        if self.alone and self.joint:
            return (
                "; each weight alone, all zeroed, restored and the control are measured sequence by sequence "
                "until settled"
            )
        if self.joint:
            return "; the restored and control passes are measured sequence by sequence until settled"
        return ""


def _check_original(evaluation: Evaluation, original: Pass) -> None:
    model = evaluation.model
    base = original.perplexity
    if (
        evaluation.causal
        and base is not None
        and not math.isfinite(base)
        and dtype_name(next(model.parameters()).dtype) == "float16"
    ):
        raise VerificationError(
            f"{evaluation.name}: the unmodified model's perplexity is {base} in float16, "
            "so nothing can be compared with it; "
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


def _subset_replacements(
    replacements: dict[Channel, list[tuple[Any, Any]]], sequences: Sequence[int], rows: int
) -> dict[Channel, list[tuple[Any, Any]]]:
    """The replacements of some sequences (recorded ``rows`` per forward call), in forward calls of ``rows``."""
    import torch

    result = {}
    for ch, per_call in replacements.items():
        calls = []
        for k in range(0, len(sequences), rows):
            call = sequences[k : k + rows]
            masks = [per_call[i // rows][0][i % rows : i % rows + 1] for i in call]
            values = [per_call[i // rows][1][i % rows : i % rows + 1] for i in call]
            calls.append((torch.cat(masks), torch.cat(values)))
        result[ch] = calls
    return result


def _per_sequence(replacements: dict[Channel, list[tuple[Any, Any]]], evaluation: Evaluation) -> bool:
    """Whether every recorded capture holds one row per sequence (a routed expert's holds one per routed token)."""
    total, rows = evaluation.sequences, evaluation.rows
    for per_call in replacements.values():
        for k, (mask, _) in enumerate(per_call):
            if mask.dim() < 2 or mask.shape[0] != min(rows, total - k * rows):
                return False
    return True


JOINT = ("all_zeroed", "restored_activation", "control")
"""The passes beside the single-weight ablations, named as the report's figures are."""

Place = Callable[[str, Sequence[int] | None], PerCall | None]
"""Where a joint pass (by its `JOINT` name) starts: on every sequence (None), or on some sequences in one call."""


@dataclass(frozen=True)
class _Joint:
    together: Pass | None
    restored: Pass | None
    control: Pass | None
    notes: tuple[str, ...]
    settled: dict[str, Settled]


def _joint(
    evaluation: Evaluation,
    ablations: Sequence[Ablation],
    control: Sequence[Target],
    original: Pass,
    alone: Sequence[Pass],
    say: Say,
    place: Place,
    settling: bool = False,
) -> _Joint:
    """All zeroed, all zeroed with the super activation restored, and the control; ``place`` starts each pass.

    ``settling``: each runs sequence by sequence, paired with the original, until its ratio's class is settled, as a
    single weight does (`_settle`); otherwise on every sequence.
    """
    if not ablations:
        return _Joint(
            None, None, None, ("the entry claims no super weight: only the original figure was measured",), {}
        )
    model, notes = evaluation.model, []
    settled: dict[str, Settled] = {}
    order = _order(evaluation, original, ablations) if settling else _Order((), 0)

    def run_pass(name: str, stops: bool = False, replacements: dict[Channel, list[Any]] | None = None) -> Pass:
        if not settling or (replacements and not _per_sequence(replacements, evaluation)):
            with restoring(model, replacements) if replacements else nullcontext():
                return evaluation.passes(around=place(name, None), stops=stops)[0]

        def run(active: Sequence[int], chunk: Sequence[int]) -> tuple[Pass, ...]:
            replacing = _subset_replacements(replacements, chunk, evaluation.rows) if replacements else None
            with restoring(model, replacing) if replacing else nullcontext():
                return evaluation.subset(chunk).passes(around=place(name, chunk), stops=stops)

        p, settled[name] = _settle(evaluation, original, [0], [None], order, _step(evaluation), run, stops=stops)[0]
        return p

    restored = None
    with zeroed(model, [a.target for a in ablations]):
        if len(ablations) == 1:  # the one weight zeroed alone is all of them zeroed (scored with the stop ids)
            together = alone[0]
        else:
            say("all zeroed")
            together = run_pass("all_zeroed", stops=True)
        replacements = _replacements(original, _unique_channels(ablations))
        if replacements:
            say("all zeroed, super activation restored")
            restored = run_pass("restored_activation", replacements=replacements)
        else:
            notes.append("no super activation recorded in the claimed channels: nothing to restore")
    control_pass = None
    if control:
        say("control")
        with zeroed(model, list(control)):
            control_pass = run_pass("control")
    return _Joint(together, restored, control_pass, tuple(notes), settled)


def _plain(
    evaluation: Evaluation,
    ablations: Sequence[Ablation],
    control: Sequence[Target],
    say: Say,
    why: str,
    settling: _Settling = _Settling(),
) -> Measured:
    say("original")
    original = evaluation.passes(channels=_unique_channels(ablations), stops=True)[0]
    _check_original(evaluation, original)
    alone: list[Pass] = []
    settled: list[Settled | None] = []
    for k, a in enumerate(ablations):
        say(f"weight {k + 1} of {len(ablations)}: zeroing {a.target.coordinate}")
        s: Settled | None
        with zeroed(evaluation.model, [a.target]):
            if settling.alone:

                def run(active: Sequence[int], chunk: Sequence[int], a: Ablation = a) -> tuple[Pass, ...]:
                    return evaluation.subset(chunk).passes(channels=[a.channel])

                order = _order(evaluation, original, [a])
                p, s = _settle(evaluation, original, [0], [a.channel], order, _step(evaluation), run)[0]
            else:
                p = evaluation.passes(channels=[a.channel], stops=len(ablations) == 1)[0]
                s = _whole(evaluation, original, p)
        alone.append(p)
        settled.append(s)
    joint = _joint(evaluation, ablations, control, original, alone, say, lambda name, chunk: None, settling.joint)
    return Measured(
        original=original,
        alone=tuple(alone),
        together=joint.together,
        restored=joint.restored,
        control=joint.control,
        method=Method("plain", why + str(settling)),
        notes=joint.notes,
        settled=tuple(settled),
        joint_settled=joint.settled,
    )


def _step(evaluation: Evaluation) -> int:
    """The least step of a settling pass after its first: two sequences on CPU (one a call cost 1.5x per token of four
    on the planted 334M; two waste at most one), a batch on a GPU. A pass that would need more at its present spread
    (`Settled.more`) takes up to a full call."""
    return min(CPU_STEP, evaluation.rows) if input_device(evaluation.model).type == "cpu" else evaluation.rows


@dataclass(frozen=True)
class _Order:
    """The sequences in the order a settling pass measures them; the first ``census`` are measured whole."""

    sequences: tuple[int, ...]
    census: int


def _order(evaluation: Evaluation, original: Pass, ablations: Sequence[Ablation]) -> _Order:
    """Sequences for ablations settling together: first a census of those the original pass shows to be unusual, then
    the rest, each channel's largest value first, then in a fixed pseudo-random order (neighbouring windows of a text
    are alike).

    The census holds, for each channel with a super activation (`MASSIVE`), the sequence of its largest one (so its
    zeroed value is always measured; not where every sequence holds that peak, `_peak_everywhere`) and every sequence
    whose count of super-activation positions (at least `MASSIVE` times the channel's median) differs from most
    sequences' (a second spike, or none): an ablation may change those far more than the rest. An ordinary channel
    adds nothing to it.
    """
    total = evaluation.sequences
    census: list[int] = []
    leading: list[int] = []
    for channel in _unique_channels(ablations):
        values = original.channels.get(channel) or []
        where = _spike_sequence(values)
        if _massive(values):
            # the peak's sequence is measured first and counted whole, unless every sequence holds it (the same first
            # token): then whichever is sampled first holds it, and a census of it would only cost a sequence
            spike = [] if _peak_everywhere(values, total) else [where]
            census.extend(i for i in [*spike, *_unusual_sequences(values, total)] if i is not None and i not in census)
        elif where is not None and where not in leading:
            leading.append(where)
    leading = [i for i in leading if i not in census]
    rest = [i for i in range(total) if i not in census and i not in leading]
    random.Random(0).shuffle(rest)
    return _Order(tuple(census + leading + rest), len(census))


def _massive(values: Sequence[Any]) -> bool:
    """Whether a channel's captures hold a super activation: a peak of at least `MASSIVE` times the median."""
    return _massive_floor(values) is not None


def _massive_floor(values: Sequence[Any]) -> float | None:
    """The least magnitude that is a super activation in this channel (`MASSIVE` times its median |value|), or None
    where the channel has none (its peak under that)."""
    import torch

    if not values:
        return None
    magnitudes = torch.cat([v.reshape(-1).abs() for v in values])
    if magnitudes.numel() == 0:
        return None
    peak, floor = float(magnitudes.max()), MASSIVE * float(magnitudes.median())
    return floor if peak > 0.0 and peak >= floor else None


def _sequence_rows(values: Sequence[Any], total: int) -> Any | None:
    """A channel's captures as one row of |values| per sequence, or None where they are not one row per sequence (a
    routed expert's hold one per routed token)."""
    import torch

    if not values or any(v.dim() < 2 for v in values) or sum(int(v.shape[0]) for v in values) != total:
        return None
    return torch.cat([v.reshape(v.shape[0], -1).abs() for v in values])


def _peak_everywhere(values: Sequence[Any], total: int) -> bool:
    """Whether every sequence's largest |value| in the channel lies within `SAME_PEAK` of the channel's peak."""
    rows = _sequence_rows(values, total)
    if rows is None:
        return False
    largest = rows.amax(dim=1)
    peak = float(largest.max())
    return peak > 0.0 and bool((largest >= (1 - SAME_PEAK) * peak).all())


def _unusual_sequences(values: Sequence[Any], total: int) -> list[int]:
    """Sequences whose count of super-activation positions (`_massive_floor`) differs from the commonest count.

    Nothing where the channel has no super activation, or where a capture is not one row per sequence. The count is
    of massive positions, not of those restored: a second spike under `RESTORE_FRACTION` of the peak is not restored,
    so zeroing removes it there alone (SmolLM2, 26 sequences: 7,074 at layer 28 where the peak is 14,253 changed its
    sequence x5 and escaped a census counting restored ones).
    """
    import torch

    rows = _sequence_rows(values, total)
    floor = _massive_floor(values) if rows is not None else None
    if rows is None or floor is None:
        return []  # no super activation in this channel: its largest values are ordinary ones
    counts = (rows >= floor).sum(dim=1)
    common = int(torch.mode(counts).values)
    unusual = [i for i in range(total) if int(counts[i]) != common]
    return unusual if len(unusual) <= RARE * total else []  # common ones are sampled as readily as the rest


def _spike_sequence(values: Sequence[Any]) -> int | None:
    """The sequence (row across forward calls) where a channel capture has its largest magnitude."""
    best: tuple[float, int] | None = None
    row = 0
    for tensor in values:
        if tensor.numel():
            flat = tensor.reshape(tensor.shape[0], -1).abs().amax(dim=1)
            i = int(flat.argmax())
            if best is None or float(flat[i]) > best[0]:
                best = (float(flat[i]), row + i)
        row += int(tensor.shape[0]) if tensor.dim() else 1
    return None if best is None else best[1]


def _whole(evaluation: Evaluation, original: Pass, alone: Pass) -> Settled | None:
    """The bound of a weight measured on every sequence: its own figure (causal LMs)."""
    if not evaluation.causal or not alone.sequence_nll:
        return None
    changes = [a - b for a, b in zip(alone.sequence_nll, original.sequence_nll)]
    return bound(changes, list(alone.sequence_tokens), len(changes))


Run = Callable[[Sequence[int], Sequence[int]], tuple[Pass, ...]]
"""Runs the active members (positions in the group) on some sequences: one Pass per active member."""


def _settle(
    evaluation: Evaluation,
    original: Pass,
    members: Sequence[int],
    channels: Sequence[Channel | None],
    order: _Order,
    step: int,
    run: Run,
    stops: bool = False,
) -> dict[int, tuple[Pass, Settled]]:
    """Measure a group's passes a few sequences at a time until each one's class is settled (or every sequence is used).

    Returns, per member, a Pass shaped like a whole-text one: perplexity = original x the ratio estimate; channel
    captures (``channels[slot]``, None for none) in the original's per-call layout, NaN where a sequence was not
    measured; with ``stops``, stopword probabilities = original x the paired ratio on the sequences measured.
    """
    import torch

    total = evaluation.sequences
    changes: dict[int, list[float]] = {m: [] for m in members}
    counts: dict[int, list[int]] = {m: [] for m in members}
    seen: dict[int, dict[int, Any]] = {m: {} for m in members}  # per member: sequence -> its channel capture row
    stop_sums: dict[int, list[Any]] = {m: [0.0, 0.0] for m in members}  # per member: [zeroed, original] per stop id
    done: dict[int, Settled] = {}
    active = list(range(len(members)))
    position = 0
    total_tokens = sum(original.sequence_tokens) if len(original.sequence_tokens) == total else None
    next_step = step
    while active and position < total:
        # the first step takes the census and the fewest sampled sequences any class needs, in full forward calls
        end = position + next_step if position else order.census + MIN_SEQUENCES
        chunk = list(order.sequences[position:end])
        position += len(chunk)
        passes = run(active, chunk)
        still, needed = [], total
        for slot, p in zip(active, passes):
            m = members[slot]
            for j, sequence in enumerate(chunk):
                changes[m].append(p.sequence_nll[j] - original.sequence_nll[sequence])
                counts[m].append(p.sequence_tokens[j])
            if stops and p.sequence_stop:
                stop_sums[m][0] += torch.tensor([p.sequence_stop[j] for j in range(len(chunk))]).sum(dim=0)
                stop_sums[m][1] += torch.tensor([original.sequence_stop[i] for i in chunk]).sum(dim=0)
            channel = channels[slot]
            captured = p.channels.get(channel) or [] if channel is not None else []
            if captured:
                rows = torch.cat(captured)
                for j, sequence in enumerate(chunk):
                    seen[m][sequence] = rows[j]
            result = bound(changes[m], counts[m], total, census=order.census, total_tokens=total_tokens)
            if result.classification is not None:
                done[m] = result
            else:
                still.append(slot)
                needed = min(needed, result.more)
        active = still
        # a full call when every pass left needs that many more at its present spread, else the least step
        next_step = min(max(step, needed), max(step, evaluation.rows))
    results = {}
    for slot, m in enumerate(members):
        settled = done[m]
        channel = channels[slot]
        captures = {}
        if channel is not None:
            captures[channel] = _layout(original.channels.get(channel) or [], seen[m])
        perplexity = original.perplexity * settled.ratio if original.perplexity is not None else None
        probs = {}
        if stops and original.stop_probs:
            zeroed_sum, original_sum = stop_sums[m]
            for i, (token, value) in enumerate(original.stop_probs.items()):
                base = float(original_sum[i]) if not isinstance(original_sum, float) else 0.0
                probs[token] = value * float(zeroed_sum[i]) / base if base > 0 else value
        results[m] = (Pass(perplexity=perplexity, channels=captures, stop_probs=probs), settled)
    return results


def _layout(reference: Sequence[Any], rows: dict[int, Any]) -> list[Any]:
    """Captured rows placed as the original pass's per-call captures hold them (NaN for sequences not measured)."""
    import torch

    placed, start = [], 0
    for tensor in reference:
        block = torch.full_like(tensor, math.nan)
        for i in range(tensor.shape[0]):
            if start + i in rows:
                block[i] = rows[start + i]
        placed.append(block)
        start += int(tensor.shape[0])
    return placed


@dataclass(frozen=True)
class _Group:
    """Ablations that share forward passes: stacked (hooks) or a single one zeroed in place."""

    start: int
    members: tuple[int, ...]
    stacked: tuple[StackedWeight, ...] = ()


def _start(layers: Layers, model: Any, tensor: str) -> int:
    return layers.index_of(resolve_name(model, tensor).rsplit(".", 1)[0]) or 0


def _groups(
    starts: Sequence[int], stackable: Sequence[StackedWeight | None], size: int, depth: float, overhead: float
) -> list[_Group]:
    """Stackable ablations in layer order, cut into runs of at most ``size`` that share a forward pass; the rest alone.

    A run starts at its earliest layer, so stacking a late ablation with an early one costs it the layers
    in between. The cut minimises the estimated work, sum over runs of (layers run) x (copies + ``overhead``),
    with ``depth`` the layer count plus the head's cost in layers (see `FORWARD_OVERHEAD`).
    """
    alone = [_Group(starts[i], (i,)) for i in range(len(starts)) if stackable[i] is None or size == 1]
    order = sorted(
        (i for i in range(len(starts)) if stackable[i] is not None and size > 1), key=lambda i: (starts[i], i)
    )
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
        stacked = (
            tuple(stackable[i] for i in members) if len(members) > 1 else ()
        )  # alone, zeroing in place is as cheap
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
        kwargs = (
            {"use_cache": False} if evaluation.causal else {"attention_mask": None if mask is None else mask.to(device)}
        )
        evaluation.model(input_ids=ids.to(device), **kwargs)
    return seen[-1]


def _fast(
    evaluation: Evaluation,
    ablations: Sequence[Ablation],
    control: Sequence[Target],
    layers: Layers,
    say: Say,
    stack_anyway: bool = False,
    settling: _Settling = _Settling(),
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

    hidden = int(
        getattr(model.get_input_embeddings(), "embedding_dim", 0) or model.get_input_embeddings().weight.shape[-1]
    )
    wanted = sorted(({g.start for g in groups} | {together_start, control_start}) - {0})
    estimate = len(wanted) * evaluation.inputs.input_ids.numel() * hidden * next(model.parameters()).element_size()
    if estimate > work_budget(CACHE_BYTES, input_device(model).type, 2):
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

    def around_rows(start: int, chunk: Sequence[int], copies: int) -> PerCall | None:
        """Start a pass over some sequences (calls of ``rows``) from their rows of the recorded residual stream."""
        if not skip or start == 0:
            return None
        rows = evaluation.rows
        calls = [_recorded_rows(recorder.outputs[start], chunk[k : k + rows], rows) for k in range(0, len(chunk), rows)]
        return lambda k: starting_at(layers, start, calls[k], copies)

    alone: list[Pass | None] = [None] * len(ablations)
    settled: list[Settled | None] = [None] * len(ablations)
    begun = 0
    for group in groups:
        members = [ablations[i] for i in group.members]
        begun += len(members)
        which = f"weight {begun}" if len(members) == 1 else f"weights {begun - len(members) + 1}-{begun}"
        say(
            f"{which} of {len(ablations)}: zeroing {', '.join(m.target.coordinate for m in members)}"
            + (" (one pass)" if group.stacked else "")
        )
        with ExitStack() as stack:
            if not group.stacked:
                stack.enter_context(zeroed(model, [members[0].target]))
            if settling.alone:

                def run(active: Sequence[int], chunk: Sequence[int], group: _Group = group) -> tuple[Pass, ...]:
                    hooks: AbstractContextManager[Any] = nullcontext()
                    if group.stacked:
                        hooks = ablating(model, [group.stacked[slot] for slot in active])
                    with hooks:
                        return evaluation.subset(chunk).passes(
                            copies=len(active),
                            around=around_rows(group.start, chunk, len(active)),
                            channels=[ablations[group.members[slot]].channel for slot in active],
                        )

                order = _order(evaluation, original, members)
                channels = [m.channel for m in members]
                for i, (p, s) in _settle(
                    evaluation, original, group.members, channels, order, _step(evaluation), run
                ).items():
                    alone[i], settled[i] = p, s
                continue
            if group.stacked:
                stack.enter_context(ablating(model, group.stacked))
            passes = evaluation.passes(
                copies=len(members),
                around=around(group.start, len(members)),
                channels=[m.channel for m in members],
                stops=len(ablations) == 1,
            )
        for i, p in zip(group.members, passes):
            alone[i], settled[i] = p, _whole(evaluation, original, p)
    measured_alone = tuple(p for p in alone if p is not None)

    starts = {"all_zeroed": together_start, "restored_activation": together_start, "control": control_start}

    def place(name: str, chunk: Sequence[int] | None) -> PerCall | None:
        return around(starts[name]) if chunk is None else around_rows(starts[name], chunk, 1)

    joint = _joint(evaluation, ablations, control, original, measured_alone, say, place, settling.joint)

    used = []
    if skip:
        used.append("each pass starts at the first layer it changes, from the recorded residual stream")
    most = max((len(g.members) for g in groups if g.stacked), default=1)
    if most > 1:
        used.append(f"up to {most} single-weight ablations share each forward pass")
    if used:
        method = Method("fast", "; ".join(used + off) + str(settling))
    else:
        method = Method(
            "plain",
            "every pass runs the whole model: " + "; ".join(off or ["no ablation to shorten"]) + str(settling),
        )
    return Measured(
        original=original,
        alone=measured_alone,
        together=joint.together,
        restored=joint.restored,
        control=joint.control,
        method=method,
        notes=joint.notes,
        settled=tuple(settled),
        joint_settled=joint.settled,
    )


def _recorded_rows(per_call: Sequence[Any], sequences: Sequence[int], rows: int) -> Any:
    """The recorded residual stream of some sequences (recorded ``rows`` per forward call), stacked in their order."""
    import torch

    picked = []
    for sequence in sequences:
        value = per_call[sequence // rows]
        tensor = value[0] if isinstance(value, tuple) else value
        picked.append(tensor[sequence % rows : sequence % rows + 1])
    joined = torch.cat(picked)
    first = per_call[0]
    return (joined, *first[1:]) if isinstance(first, tuple) else joined


__all__ = ["METHODS", "RESTORE_FRACTION", "Ablation", "Evaluation", "Measured", "Method", "measure"]
