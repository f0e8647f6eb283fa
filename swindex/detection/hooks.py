"""Forward hooks that reduce each down projection's activations to a few numbers, and a layer-input cache.

Why reductions only: a scan must fit beside the model, so each hook keeps the largest |input| and |output|
with their token and channel, their medians, and the few largest products weight x input behind the output
spike; the activations themselves are dropped as soon as the hook returns.

Found weights are *zeroed in the computation*, not in memory: the hook recomputes the affected output rows
with those scalars taken as zero, which equals zeroing the weight while leaving every parameter (and any
offloaded or memory-mapped copy) bit for bit as loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import DetectionError
from ..params import materialised
from .arch import DownProjection, ModelLayout

TOP_CONTRIBUTIONS = 8


@dataclass(frozen=True)
class Contribution:
    """One weight's product with its input at the output spike: the candidates for a super weight."""

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


class Recorder:
    """Hooks every down projection of a layout; `observations[i]` is the latest pass through site i."""

    def __init__(self, layout: ModelLayout) -> None:
        self.layout = layout
        self.observations: dict[int, Observation] = {}
        self.zeros: dict[int, set[tuple[int | None, int, int]]] = {}  # site -> {(expert, row, column)}
        self._handles: list[Any] = []
        self._patched: list[tuple[Any, str, Any, bool]] = []

    def forget(self, from_layer: int) -> None:
        """Drop observations of layers a new pass will recompute (a site the pass skips must not look current)."""
        for i, site in enumerate(self.layout.sites):
            if site.layer >= from_layer:
                self.observations.pop(i, None)

    def zeroed(self, site: int, row: int, column: int, expert: int | None = None) -> bool:
        return (expert, row, column) in self.zeros.get(site, ())

    def zero(self, site: int, row: int, column: int, expert: int | None = None) -> None:
        """Treat the weight (row, column[, expert]) of site as zero in every later pass."""
        self.zeros.setdefault(site, set()).add((expert, row, column))

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
            changed = False
            if zeros:
                bias = getattr(module, "bias", None)
                for row, columns in _by_row(zeros, None).items():
                    w = _row(weight, row, site.kind).to(device=x.device, dtype=x.dtype, copy=True)
                    w[list(columns)] = 0
                    value = x @ w
                    if bias is not None:
                        value = value + materialised(module, "bias")[row].to(device=value.device, dtype=value.dtype)
                    if not changed:
                        y = y.clone()
                        changed = True
                    y[:, row] = value.to(y.dtype)
            self.observations[index] = _observe(index, site, [(None, x, y, weight, zeros)])
            return y.reshape(output.shape) if changed else None

        return hook


def _row(weight: Any, row: int, kind: str) -> Any:
    return weight[:, row] if kind == "conv1d" else weight[row]


def _by_row(zeros: set[tuple[int | None, int, int]], expert: int | None) -> dict[int, set[int]]:
    rows: dict[int, set[int]] = {}
    for e, row, column in zeros:
        if e == expert:
            rows.setdefault(row, set()).add(column)
    return rows


def _observe(index: int, site: DownProjection, parts: list[tuple[int | None, Any, Any, Any, Any]], tokens: list[Any] | None = None) -> Observation:
    """Reduce (expert, input, output, weight, zeros) parts of one call to an Observation."""
    import torch

    best_in = best_out = None
    inputs, outputs = [], []
    for k, (expert, x, y, weight, zeros) in enumerate(parts):
        ax, ay = x.detach().abs().float(), y.detach().abs().float()
        inputs.append(ax.reshape(-1))
        outputs.append(ay.reshape(-1))
        i = int(torch.argmax(ax))
        o = int(torch.argmax(ay))
        token_of = (lambda t: int(tokens[k][t])) if tokens is not None else (lambda t: t)
        in_value = float(ax.reshape(-1)[i])
        if best_in is None or in_value > best_in[0]:
            t, c = divmod(i, ax.shape[1])
            best_in = (in_value, float(x[t, c]), token_of(t), c)
        out_value = float(ay.reshape(-1)[o])
        if best_out is None or out_value > best_out[0]:
            t, r = divmod(o, ay.shape[1])
            best_out = (out_value, float(y[t, r]), token_of(t), r, expert, _contributions(x[t], weight, r, site, expert, zeros))
    if best_in is None or best_out is None:
        return Observation(index, 0.0, 0, 0, 0.0, 0.0, 0, 0, 0.0, None, (), 0.0)
    input_median = float((inputs[0] if len(inputs) == 1 else torch.cat(inputs)).median())
    output_median = float((outputs[0] if len(outputs) == 1 else torch.cat(outputs)).median())
    return Observation(
        site=index,
        input_max=best_in[1], input_token=best_in[2], input_channel=best_in[3], input_median=input_median,
        output_max=best_out[1], output_token=best_out[2], output_channel=best_out[3], output_median=output_median,
        expert=best_out[4], contributions=best_out[5][0], row_median=best_out[5][1],
    )


def _contributions(x_token: Any, weight: Any, row: int, site: DownProjection, expert: int | None, zeros: Any) -> tuple[tuple[Contribution, ...], float]:
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
    """A replacement forward for a fused experts module that computes each expert explicitly and observes it.

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

    def forward(hidden_states: Any, top_k_index: Any, top_k_weights: Any, *args: Any, **kwargs: Any) -> Any:
        has_gate = getattr(module, "has_gate", True)
        has_bias = getattr(module, "has_bias", False)
        up = materialised(module, "gate_up_proj" if has_gate else "up_proj")
        up_bias = materialised(module, "gate_up_proj_bias" if has_gate else "up_proj_bias") if has_bias else None
        down = materialised(module, "down_proj")
        down_bias = materialised(module, "down_proj_bias") if has_bias else None
        zeros = recorder.zeros.get(index) or set()
        out = torch.zeros_like(hidden_states)
        parts, tokens = [], []
        for expert in torch.unique(top_k_index).tolist():
            if expert < 0 or expert >= down.shape[0]:
                continue
            token_idx, slot = torch.where(top_k_index == expert)
            x = hidden_states[token_idx]
            h = linear(x, up[expert], up_bias[expert] if up_bias is not None else None)
            h = module._apply_gate(h) if has_gate else module.act_fn(h)
            w = down[expert]
            rows = _by_row(zeros, expert)
            if rows:
                w = w.clone()
                for row, columns in rows.items():
                    for column in columns:
                        w[(column, row) if site.transposed else (row, column)] = 0
            y = linear(h, w, down_bias[expert] if down_bias is not None else None)
            parts.append((expert, h, y, w, None))
            tokens.append(token_idx)
            if getattr(module, "has_post_expert_norm", False):
                y = module.post_expert_norm(y)
            y = y * top_k_weights[token_idx, slot, None].to(y.dtype)
            out.index_add_(0, token_idx, y.to(out.dtype))
        recorder.observations[index] = _observe(index, site, parts, tokens)
        return out

    return forward


class LayerReplay:
    """Caches each layer's input during one full forward so that later passes can start at any layer.

    Why: zeroing a weight in layer L changes nothing before L, so a pass only needs layers L.. onward.
    Replay is used only when the cached chain is exact (layer i+1's input is layer i's output); models that
    transform hidden states between layers are rerun in full instead (`chained` is False).
    """

    def __init__(self, layers: Any) -> None:
        self.layers = layers
        self.inputs: list[tuple[tuple, dict[str, Any]] | None] = [None] * len(layers)
        self.chained = False

    @contextmanager
    def capturing(self) -> Iterator[LayerReplay]:
        outputs: list[Any] = [None] * len(self.layers)
        handles = []
        for i, layer in enumerate(self.layers):
            handles.append(layer.register_forward_pre_hook(self._pre_hook(i), with_kwargs=True))
            handles.append(layer.register_forward_hook(self._post_hook(i, outputs)))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
        self.chained = all(entry is not None for entry in self.inputs) and all(
            _same(outputs[i], _hidden_in(*self.inputs[i + 1])) for i in range(len(self.layers) - 1)
        )

    def _pre_hook(self, i: int) -> Any:
        def hook(_module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
            self.inputs[i] = (args, dict(kwargs))

        return hook

    @staticmethod
    def _post_hook(i: int, outputs: list[Any]) -> Any:
        def hook(_module: Any, _args: tuple, output: Any) -> None:
            outputs[i] = _hidden_out(output)

        return hook

    def run_from(self, start: int) -> None:
        """Run layers start.. from the cached input of `start`, updating the cache for the layers after it."""
        hidden = _hidden_in(*self.inputs[start])
        for i in range(start, len(self.layers)):
            args, kwargs = _with_hidden(*self.inputs[i], hidden)
            self.inputs[i] = (args, kwargs)
            hidden = _hidden_out(self.layers[i](*args, **kwargs))


def _hidden_in(args: tuple, kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("hidden_states")


def _with_hidden(args: tuple, kwargs: dict[str, Any], hidden: Any) -> tuple[tuple, dict[str, Any]]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _hidden_out(output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    first = getattr(output, "to_tuple", lambda: (None,))()[0]
    return first


def _same(a: Any, b: Any) -> bool:
    import torch

    if a is None or b is None:
        return False
    if a is b:
        return True
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and a.device == b.device and bool(torch.equal(a, b))
