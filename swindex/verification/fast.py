"""The two shortcuts of fast verification, each exact and each checked on the model before it is trusted.

*Start where the ablation starts.* Zeroing a weight of layer L cannot change what layers 0..L-1 compute.
The original pass records, for each forward call, the residual stream entering every layer a later pass
starts at (the previous layer's output); a pass that starts at layer L then has layers 0..L-1 hand back that
recording instead of computing. The model's own forward still runs around them (embeddings, masks, position
embeddings, layers L.., final norm, LM head), so nothing architecture-specific is re-implemented.

*Several ablations per forward pass.* Zeroing ``W[r, j]`` of a plain Linear (or GPT-2 Conv1D) changes only
output channel ``r``. With the inputs stacked B times along the batch, a hook recomputes channel ``r`` of
copy ``b`` from that copy's input with column ``j`` zeroed, so copy ``b`` sees exactly ablation ``b``.

Why checked: a model may call its layers out of order, keep state between them, or mix the rows of a batch
(capacity-limited expert routing). The recording pass verifies the call order and that each recorded output
is what the next layer reads; one batch is then rerun from the latest start, alone and stacked twice, and
must match the original. A shortcut that fails is switched off, with the reason in the report; offloaded
models and unknown module structures use the plain way (every pass runs the whole model).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedModelError
from ..layout import module_stores_transposed
from ..surgery import Channel, Target, resolve_module, resolve_name

MAX_STACK = 8
"""Most ablations stacked into one forward pass."""
STACK_BYTES = 512 * 2**20
"""Budget for the largest tensor of a stacked forward pass (the logits, for causal LMs), at most a quarter of the
memory budget of the model's device (`work_budget`)."""
CACHE_BYTES = 2 * 2**30
"""Budget for the recorded residual stream, at most half the memory budget of the model's device (`work_budget`);
a larger recording switches the layer shortcut off."""


@dataclass(frozen=True)
class Layers:
    """The model's layer list, as the detector finds it (`swindex.detection.arch.locate`)."""

    path: str
    modules: Any = field(compare=False, repr=False)
    routed: bool  # Mixture-of-Experts: routing may depend on the other rows of a batch, so no stacking

    def index_of(self, module_name: str) -> int | None:
        """The layer holding module ``module_name``, or None when it is outside the layer list."""
        prefix = self.path + "."
        if not module_name.startswith(prefix):
            return None
        head = module_name[len(prefix) :].split(".", 1)[0]
        return int(head) if head.isdigit() and int(head) < len(self.modules) else None


def layers_for_shortcuts(model: Any) -> tuple[Layers | None, str | None]:
    """The layer list when shortcuts can apply, else (None, why the plain way runs)."""
    if any(p.device.type == "meta" for p in model.parameters()) or any(hasattr(m, "_hf_hook") for m in model.modules()):
        return None, "the model is dispatched or offloaded by accelerate, so every pass runs the whole model"
    from ..detection.arch import locate

    try:
        layout = locate(model)
    except UnsupportedModelError as exc:
        return None, f"unknown module structure ({exc})"
    return Layers(layout.layers_path, layout.layers, any(s.routed for s in layout.sites)), None


@dataclass(frozen=True)
class StackedWeight:
    """One single-weight ablation a stacked pass can run: channel ``row`` recomputed with ``column`` zeroed."""

    target: Target
    channel: Channel
    row_weight: Any  # the output channel's weights over the input, with the claimed one set to 0
    bias: Any | None


def stacked_weight(model: Any, target: Target, channel: Channel) -> StackedWeight | None:
    """The recomputation for zeroing ``target``, or None when its module is not a plain Linear or Conv1D weight."""
    import torch

    if channel.expert is not None:
        return None
    module = resolve_module(model, channel.module)
    if resolve_name(model, target.tensor) != f"{channel.module}.weight" or module.weight.device.type == "meta":
        return None
    if type(module) is torch.nn.Linear:
        row = module.weight.detach()[channel.row].clone()
    elif module_stores_transposed(module) and getattr(module, "nf", None) == module.weight.shape[1]:  # a Conv1D
        row = module.weight.detach()[:, channel.row].clone()
    else:
        return None
    row[channel.column] = 0
    bias = getattr(module, "bias", None)
    return StackedWeight(target, channel, row, None if bias is None else bias.detach()[channel.row].clone())


@contextmanager
def ablating(model: Any, weights: Sequence[StackedWeight]) -> Iterator[None]:
    """Copy ``b`` of a pass stacked ``len(weights)`` times sees ``weights[b]`` zeroed (hooks recompute its channel)."""
    copies = len(weights)
    handles = []
    try:
        for b, w in enumerate(weights):

            def hook(module: Any, args: Any, output: Any, b: int = b, w: StackedWeight = w) -> Any:
                x = args[0]
                y = output[0] if isinstance(output, tuple) else output
                n = x.shape[0] // copies
                value = x[b * n : (b + 1) * n] @ w.row_weight.to(x.device, x.dtype)
                if w.bias is not None:
                    value = value + w.bias.to(value.device, value.dtype)
                y[b * n : (b + 1) * n, ..., w.channel.row] = value.to(y.dtype)
                return output

            handles.append(resolve_module(model, w.channel.module).register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


def _repeat(value: Any, copies: int) -> Any:
    if copies == 1:
        return value
    if isinstance(value, tuple):
        return (_repeat(value[0], copies), *value[1:])
    return value.repeat(copies, *([1] * (value.dim() - 1)))


@contextmanager
def starting_at(layers: Layers, start: int, recorded: Any, copies: int = 1) -> Iterator[None]:
    """Within the block, layers ``0..start-1`` compute nothing and hand on ``recorded`` (layer ``start``'s input)."""
    if start <= 0:
        yield
        return
    value = _repeat(recorded, copies)
    skipped = list(layers.modules[:start])
    saved = [layer.__dict__.get("forward") for layer in skipped]

    def recorded_output(*args: Any, **kwargs: Any) -> Any:
        return value

    try:
        for layer in skipped:
            layer.forward = recorded_output
        yield
    finally:
        for layer, old in zip(skipped, saved):
            if old is None:
                layer.__dict__.pop("forward", None)
            else:
                layer.forward = old


class Recorder:
    """Records, during the original pass, the residual stream entering each layer in ``starts``, per forward call.

    ``problem`` says why the recording cannot stand in for the layers (None when it can).
    """

    def __init__(self, layers: Layers, starts: Sequence[int]) -> None:
        self.layers = layers
        self.starts = sorted({s for s in starts if s > 0})
        self.outputs: dict[int, list[Any]] = {s: [] for s in self.starts}
        self.problem: str | None = None
        self._order: list[int] = []
        self._last: dict[int, Any] = {}

    def _output_hook(self, start: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            if isinstance(output, tuple) and (not output or any(o is not None for o in output[1:])):
                self._fail(f"layer {start - 1} returns more than the hidden states")
                return
            tensor = output[0] if isinstance(output, tuple) else output
            self._last[start] = tensor
            kept = tensor.detach().clone()
            self.outputs[start].append((kept, *output[1:]) if isinstance(output, tuple) else kept)

        return hook

    def _input_hook(self, index: int) -> Any:
        import torch

        def hook(module: Any, args: Any, kwargs: Any) -> None:
            self._order.append(index)
            if index in self.outputs:
                hidden = args[0] if args else kwargs.get("hidden_states")
                before = self._last.pop(index, None)
                if hidden is None or before is None or hidden.shape != before.shape or not torch.equal(hidden, before):
                    self._fail(f"layer {index} does not read layer {index - 1}'s output")

        return hook

    def _fail(self, why: str) -> None:
        if self.problem is None:
            self.problem = why

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Hooks for the whole original pass."""
        handles = []
        try:
            for i, layer in enumerate(self.layers.modules):
                handles.append(layer.register_forward_pre_hook(self._input_hook(i), with_kwargs=True))
            for s in self.starts:
                handles.append(self.layers.modules[s - 1].register_forward_hook(self._output_hook(s)))
            yield
        finally:
            for h in handles:
                h.remove()

    @contextmanager
    def call(self, k: int) -> Iterator[None]:
        """Around forward call ``k``: every layer must run once, in order."""
        self._order = []
        yield
        if self._order != list(range(len(self.layers.modules))):
            self._fail("the model does not run each of its layers once, in order")

    def nbytes(self) -> int:
        total = 0
        for per_call in self.outputs.values():
            for value in per_call:
                tensor = value[0] if isinstance(value, tuple) else value
                total += tensor.numel() * tensor.element_size()
        return total


def work_budget(ceiling: int, device: str, share: int) -> int:
    """``ceiling`` bytes, or ``1/share`` of the device's memory budget (`swindex._dtypes.memory_budget`) when that is
    less: on a crowded machine a shortcut's buffers must not be what runs it out of memory."""
    from .._dtypes import memory_budget

    return min(ceiling, memory_budget("cuda" if device == "cuda" else "cpu") // share)


def stack_size(model: Any, causal: bool, rows: int, tokens: int) -> int:
    """How many copies of a ``rows x tokens`` batch one forward pass may carry within `STACK_BYTES`."""
    config = getattr(model, "config", None)
    text = getattr(config, "get_text_config", lambda: config)() if config is not None else None
    parameter = next(model.parameters())
    if causal:
        width = int(model.get_output_embeddings().weight.shape[0])
    else:
        width = max(int(getattr(text, "intermediate_size", 0) or 0), int(getattr(text, "hidden_size", 0) or 0), 1)
    per_copy = max(rows * tokens * width * parameter.element_size(), 1)
    return max(1, min(MAX_STACK, work_budget(STACK_BYTES, parameter.device.type, 4) // per_copy))


def close(reference: Any, other: Any, dtype: Any) -> bool:
    """Whether two outputs agree to within rounding (the layouts compute the same thing, maybe in another order)."""
    import torch

    if reference.shape != other.shape:
        return False
    a, b = reference.float(), other.float()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
    tolerance = 1e-3 if dtype == torch.float32 else 5e-2
    scale = float(a.abs().max()) or 1.0
    return float((a - b).abs().max()) <= tolerance * scale


__all__ = [
    "CACHE_BYTES",
    "MAX_STACK",
    "STACK_BYTES",
    "Layers",
    "Recorder",
    "StackedWeight",
    "ablating",
    "close",
    "layers_for_shortcuts",
    "stack_size",
    "stacked_weight",
    "starting_at",
    "work_budget",
]
