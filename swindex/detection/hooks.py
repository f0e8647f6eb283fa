"""Forward hooks that reduce each down projection's activations to a few numbers, remove candidates as they
are found, and a layer-input cache.

Why reductions only: a scan must fit beside the model, so each hook keeps the largest |input| and |output|
with their token and channel, their medians, and the few largest products weight x input behind the output
spike; the activations themselves are dropped as soon as the hook returns.

Why removal inside the hook: after each observation the hook asks the scan's ``decide`` which weights make
up a qualifying spike there, removes them and observes again, so the rest of the same forward pass already
runs without them. That is what a fresh pass from this layer would compute (earlier layers cannot change,
and in this layer only the down projection's output rows of the removed weights do), without recomputing
anything but those rows.

Weights are *removed in the computation*, not in memory: the hook recomputes the affected output rows with
those scalars taken as zero, which equals zeroing the weight while leaving every parameter (and any
offloaded or memory-mapped copy) bit for bit as loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import DetectionError
from ..layout import stored_index
from ..params import materialised
from .arch import DownProjection, ModelLayout

TOP_CONTRIBUTIONS = 8

Removal = tuple["int | None", int, int]
"""(expert, row, column) of a weight to treat as zero at one down projection (expert None for dense sites)."""

Decide = Callable[[int, "Observation"], Sequence[Removal]]
"""Given a site index and what the hook just saw there, the weights to remove now (none: the hook moves on)."""


@dataclass(frozen=True)
class Contribution:
    """One weight's product with its input at the output spike: what a candidate is made of."""

    column: int
    weight: float
    input: float
    product: float


@dataclass(frozen=True)
class Observation:
    """What one pass saw at one down projection (the paper's Figure 3 data plus the spike's top products)."""

    site: int
    input_max: float
    input_token: int
    input_channel: int
    input_median: float
    output_max: float
    output_token: int
    output_channel: int
    output_median: float
    expert: int | None
    contributions: tuple[Contribution, ...]
    row_median: float = 0.0  # median |weight| of the spike's row: what an ordinary weight there looks like

    @property
    def finite(self) -> bool:
        import math

        return all(math.isfinite(v) for v in (self.input_max, self.output_max, self.input_median, self.output_median))


def _decide_nothing(_site: int, _observation: Observation) -> Sequence[Removal]:
    return ()


class Recorder:
    """Hooks every down projection of a layout.

    ``observations[i]`` is site i's first observation in the latest pass through it (before anything was
    removed there); ``zeros[i]`` the weights removed at site i, applied whenever the site runs.
    """

    def __init__(self, layout: ModelLayout, decide: Decide | None = None) -> None:
        self.layout = layout
        self.decide = decide or _decide_nothing
        self.observations: dict[int, Observation] = {}
        self.zeros: dict[int, set[Removal]] = {}
        self._handles: list[Any] = []
        self._patched: list[tuple[Any, str, Any, bool]] = []

    def restart(self, from_layer: int) -> None:
        """Forget what was seen and removed in layers from_layer on: the next pass decides them again."""
        for i, site in enumerate(self.layout.sites):
            if site.layer >= from_layer:
                self.observations.pop(i, None)
                self.zeros.pop(i, None)

    def _new_removals(self, index: int, observation: Observation) -> list[Removal]:
        """What `decide` removes at this site now, without weights already removed (so the loop always ends)."""
        done = self.zeros.setdefault(index, set())
        fresh = [r for r in self.decide(index, observation) if r not in done]
        done.update(fresh)
        return fresh

    @contextmanager
    def installed(self) -> Iterator[Recorder]:
        try:
            for i, site in enumerate(self.layout.sites):
                if site.kind == "experts":
                    self._patch_forward(site.module, _experts_forward(self, i, site))
                else:
                    self._handles.append(site.module.register_forward_hook(self._linear_hook(i, site)))
            yield self
        finally:
            for handle in self._handles:
                handle.remove()
            for module, attribute, previous, had in reversed(self._patched):
                if had:
                    setattr(module, attribute, previous)
                else:
                    delattr(module, attribute)
            self._handles.clear()
            self._patched.clear()

    def _patch_forward(self, module: Any, forward: Any) -> None:
        # accelerate wraps forward and calls _old_forward with the weights in place: replace the inner one
        attribute = "_old_forward" if hasattr(module, "_old_forward") else "forward"
        had = attribute in vars(module)
        self._patched.append((module, attribute, vars(module).get(attribute), had))
        setattr(module, attribute, forward)

    def _linear_hook(self, index: int, site: DownProjection) -> Any:
        def hook(module: Any, args: tuple, output: Any) -> Any:
            import torch

            if not args or not isinstance(output, torch.Tensor):
                raise DetectionError(f"{site.path}: unexpected call of the down projection (no tensor input/output)")
            weight = materialised(module, "weight")
            x = args[0].reshape(-1, site.in_features)
            y = output.reshape(-1, site.out_features)
            zeros = self.zeros.get(index)
            copied = bool(zeros)
            if zeros:
                y = _without(module, site, x, y.clone(), weight, zeros, {row for _, row, _ in zeros})
            observation = _observe(index, site, [(None, x, y, weight, zeros)])
            self.observations[index] = observation
            while removals := self._new_removals(index, observation):
                if not copied:
                    y, copied = y.clone(), True
                y = _without(module, site, x, y, weight, self.zeros[index], {row for _, row, _ in removals})
                observation = _observe(index, site, [(None, x, y, weight, self.zeros[index])])
            return y.reshape(output.shape) if copied else None

        return hook


def _without(
    module: Any, site: DownProjection, x: Any, y: Any, weight: Any, zeros: set[Removal], rows: set[int]
) -> Any:
    """y (a private copy, written in place) with output `rows` recomputed with the removed weights taken as zero."""
    bias = materialised(module, "bias") if getattr(module, "bias", None) is not None else None
    by_row = _by_row(zeros, None)
    for row in rows:
        w = _row(weight, row, site.kind).to(device=x.device, dtype=x.dtype, copy=True)
        w[list(by_row.get(row, ()))] = 0
        value = x @ w
        if bias is not None:
            value = value + bias[row].to(device=value.device, dtype=value.dtype)
        y[:, row] = value.to(y.dtype)
    return y


def column_median(site: DownProjection, column: int, expert: int | None = None) -> float:
    """Median |weight| of one input column of a down projection:
    what an ordinary weight fed by that input looks like."""
    import torch

    if site.kind == "experts":
        weight = materialised(site.module, "down_proj")[expert]
        values = weight[column] if site.transposed else weight[:, column]
    else:
        weight = materialised(site.module, "weight")
        values = weight[column] if site.kind == "conv1d" else weight[:, column]
    return float(values.detach().to(torch.float32).abs().median())


def _row(weight: Any, row: int, kind: str) -> Any:
    return weight[:, row] if kind == "conv1d" else weight[row]


def _by_row(zeros: set[Removal] | None, expert: int | None) -> dict[int, set[int]]:
    rows: dict[int, set[int]] = {}
    for e, row, column in zeros or ():
        if e == expert:
            rows.setdefault(row, set()).add(column)
    return rows


class _Peak(NamedTuple):
    """The largest |value| seen so far in one call: where it is and, for outputs, what makes it up."""

    magnitude: float
    value: float
    token: int
    channel: int
    expert: int | None = None
    contributions: tuple[Contribution, ...] = ()
    row_median: float = 0.0


def _observe(
    index: int,
    site: DownProjection,
    parts: list[tuple[int | None, Any, Any, Any, Any]],
    tokens: list[Any] | None = None,
) -> Observation:
    """Reduce (expert, input, output, weight, zeros) parts of one call to an Observation."""
    import torch

    best_in: _Peak | None = None
    best_out: _Peak | None = None
    inputs, outputs = [], []
    for k, (expert, x, y, weight, zeros) in enumerate(parts):
        ax, ay = x.detach().abs().float(), y.detach().abs().float()
        inputs.append(ax.reshape(-1))
        outputs.append(ay.reshape(-1))
        i = int(torch.argmax(ax))
        o = int(torch.argmax(ay))
        token_of = (lambda t: int(tokens[k][t])) if tokens is not None else (lambda t: t)
        in_value = float(ax.reshape(-1)[i])
        if best_in is None or in_value > best_in.magnitude:
            t, c = divmod(i, ax.shape[1])
            best_in = _Peak(in_value, float(x[t, c]), token_of(t), c)
        out_value = float(ay.reshape(-1)[o])
        if best_out is None or out_value > best_out.magnitude:
            t, r = divmod(o, ay.shape[1])
            contributions, row_median = _contributions(x[t], weight, r, site, expert, zeros)
            best_out = _Peak(out_value, float(y[t, r]), token_of(t), r, expert, contributions, row_median)
    if best_in is None or best_out is None:
        return Observation(
            site=index,
            input_max=0.0,
            input_token=0,
            input_channel=0,
            input_median=0.0,
            output_max=0.0,
            output_token=0,
            output_channel=0,
            output_median=0.0,
            expert=None,
            contributions=(),
            row_median=0.0,
        )
    input_median = float((inputs[0] if len(inputs) == 1 else torch.cat(inputs)).median())
    output_median = float((outputs[0] if len(outputs) == 1 else torch.cat(outputs)).median())
    return Observation(
        site=index,
        input_max=best_in.value,
        input_token=best_in.token,
        input_channel=best_in.channel,
        input_median=input_median,
        output_max=best_out.value,
        output_token=best_out.token,
        output_channel=best_out.channel,
        output_median=output_median,
        expert=best_out.expert,
        contributions=best_out.contributions,
        row_median=best_out.row_median,
    )


def _contributions(
    x_token: Any, weight: Any, row: int, site: DownProjection, expert: int | None, zeros: Any
) -> tuple[tuple[Contribution, ...], float]:
    """The largest weight x input products that make up output `row` for one token, and the row's median |weight|."""
    import torch

    if site.kind == "experts":
        w = weight[:, row] if site.transposed else weight[row]
    else:
        w = _row(weight, row, site.kind)
    w = w.detach().to(device=x_token.device, dtype=torch.float32, copy=True)  # an offloaded weight lives on CPU or disk
    if zeros:
        columns = _by_row(zeros, expert).get(row)
        if columns:
            w[list(columns)] = 0
    x = x_token.detach().float()
    products = w * x
    k = min(TOP_CONTRIBUTIONS, products.numel())
    top = torch.topk(products.abs(), k).indices.tolist()
    return tuple(Contribution(c, float(w[c]), float(x[c]), float(products[c])) for c in top), float(w.abs().median())


def _experts_forward(recorder: Recorder, index: int, site: DownProjection) -> Any:
    """A replacement forward for a fused experts module that computes each expert explicitly,
    observes it and removes candidates.

    It follows transformers' generic experts semantics (gate_up or up projection, ``_apply_gate`` or the
    activation, optional biases, transposed storage, optional post-expert norm, routing weights), so the
    model's output is unchanged while each expert's down projection becomes visible.
    """
    import torch
    import torch.nn.functional as F

    module = site.module

    def linear(x: Any, weight: Any, bias: Any) -> Any:
        out = x @ weight if site.transposed else F.linear(x, weight)
        return out + bias if bias is not None else out

    def without(weight: Any, columns_by_row: dict[int, set[int]]) -> Any:
        weight = weight.clone()
        for row, columns in columns_by_row.items():
            for column in columns:
                weight[stored_index(row, column, transposed=site.transposed)] = 0
        return weight

    def forward(hidden_states: Any, top_k_index: Any, top_k_weights: Any, *args: Any, **kwargs: Any) -> Any:
        has_gate = getattr(module, "has_gate", True)
        has_bias = getattr(module, "has_bias", False)
        up = materialised(module, "gate_up_proj" if has_gate else "up_proj")
        up_bias = materialised(module, "gate_up_proj_bias" if has_gate else "up_proj_bias") if has_bias else None
        down = materialised(module, "down_proj")
        down_bias = materialised(module, "down_proj_bias") if has_bias else None
        zeros = recorder.zeros.get(index)
        parts: dict[int, list[Any]] = {}  # expert -> [token_idx, slot, h, weight, y]
        for expert in torch.unique(top_k_index).tolist():
            if expert < 0 or expert >= down.shape[0]:
                continue
            token_idx, slot = torch.where(top_k_index == expert)
            x = hidden_states[token_idx]
            h = linear(x, up[expert], up_bias[expert] if up_bias is not None else None)
            h = module._apply_gate(h) if has_gate else module.act_fn(h)
            rows = _by_row(zeros, expert)
            w = without(down[expert], rows) if rows else down[expert]
            bias = down_bias[expert] if down_bias is not None else None
            parts[expert] = [token_idx, slot, h, w, linear(h, w, bias)]

        def observe() -> Observation:
            return _observe(
                index, site, [(e, p[2], p[4], p[3], None) for e, p in parts.items()], [p[0] for p in parts.values()]
            )

        if parts:
            observation = observe()
            recorder.observations[index] = observation
            while removals := recorder._new_removals(index, observation):
                for expert in {e for e, _, _ in removals}:
                    part = parts[expert]
                    part[3] = without(down[expert], _by_row(recorder.zeros[index], expert))
                    part[4] = linear(part[2], part[3], down_bias[expert] if down_bias is not None else None)
                observation = observe()
        out = torch.zeros_like(hidden_states)
        for token_idx, slot, _h, _w, y in parts.values():
            if getattr(module, "has_post_expert_norm", False):
                y = module.post_expert_norm(y)
            y = y * top_k_weights[token_idx, slot, None].to(y.dtype)
            out.index_add_(0, token_idx, y.to(out.dtype))
        return out

    return forward


class LayerCache:
    """Keeps each layer's latest output so that a later pass can skip the layers before the first one that changed.

    Why: removing a weight in layer L changes nothing before L, so a pass only needs layers L.. onward. A
    skipped layer returns a copy of its cached output without running (an offloaded layer is not even read
    from disk), while the model's own forward still runs around it, so whatever the model passes between
    layers (masks, position embeddings, per-layer inputs) is exactly as in a full pass, on every architecture.
    ``skipped`` counts the layer calls answered from the cache.
    """

    def __init__(self, layers: Any) -> None:
        self.layers = layers
        self.outputs: list[Any] = [None] * len(layers)
        self.skipped = 0

    @contextmanager
    def active(self, skip_before: int = 0) -> Iterator[LayerCache]:
        """Within: layers before `skip_before` answer from the cache, later ones run and refresh it."""
        if any(self.outputs[i] is None for i in range(skip_before)):
            raise DetectionError(
                f"layers before {skip_before} have no cached output to skip with (a bug; please report it)"
            )
        handles: list[Any] = []
        patched: list[tuple[Any, bool, Any]] = []
        try:
            for i, layer in enumerate(self.layers):
                if i < skip_before:
                    patched.append((layer, "forward" in vars(layer), vars(layer).get("forward")))
                    layer.forward = self._cached(i)  # replaces accelerate's wrapper too: nothing is loaded for it
                else:
                    handles.append(layer.register_forward_hook(self._keep(i)))
            yield self
        finally:
            for handle in handles:
                handle.remove()
            for layer, had, previous in patched:
                if had:
                    layer.forward = previous
                else:
                    del layer.forward

    def _keep(self, i: int) -> Any:
        def hook(_module: Any, _args: tuple, output: Any) -> None:
            self.outputs[i] = _copied(output)

        return hook

    def _cached(self, i: int) -> Any:
        def forward(*_args: Any, **_kwargs: Any) -> Any:
            self.skipped += 1
            return _copied(self.outputs[i])

        return forward


def _copied(output: Any) -> Any:
    """A layer's output with its tensors copied, so that no later in-place update can reach the cache."""
    import torch

    if isinstance(output, torch.Tensor):
        return output.clone()
    if isinstance(output, tuple) and not hasattr(output, "_fields"):
        return tuple(_copied(o) for o in output)
    if isinstance(output, list):
        return [_copied(o) for o in output]
    return output
