"""Zero, scale and restore single weights of a loaded model, bit for bit, wherever the weight is stored.

A weight is named by its parameter (``tensor``, the full name in ``model.named_parameters()``) and its
``index`` in the stored tensor, so one code path serves Linear ``[row, col]``, GPT-2 Conv1D ``[col, row]``
and fused experts ``[expert, ...]``. Parameters are read and written through `swindex.params`, which also
reaches weights that accelerate offloaded; an offloaded weight is edited in its offload store (through an
in-memory override that ``restore`` removes again), so the checkpoint files on disk are never written.

Usage::

    from swindex.surgery import zeroed, scaled
    with zeroed(model, entry):          # every active super weight of the entry set to 0
        ...
    with scaled(model, entry, 2.0):     # the paper's amplification (factors 0 to 3)
        ...
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import SurgeryError
from .layout import coordinate_of, module_stores_transposed
from .params import check_index, read_scalar, read_tensor, resolve_module, resolve_name, slot
from .claims import claims_of, super_weights
from .layout import format_coordinate

__all__ = [
    "Target",
    "Saved",
    "targets",
    "resolve_name",
    "resolve_module",
    "read_value",
    "read_values",
    "read_tensor",
    "apply",
    "assign",
    "restore",
    "zeroed",
    "scaled",
    "Channel",
    "channels",
]


@dataclass(frozen=True)
class Target:
    """One scalar: a parameter's full name and the scalar's index in the stored tensor.

    Only the stored address, not a Coordinate: surgery also targets control weights that have no layer, row or
    column of their own, and a name as resolved in the loaded model. Anything with ``tensor`` and ``index`` (a
    Coordinate, a Claim, a detected candidate) is taken where a Target is.
    """

    tensor: str
    index: tuple[int, ...]

    @property
    def coordinate(self) -> str:
        return format_coordinate(self.tensor, self.index)


@dataclass(frozen=True)
class _Change:
    target: Target  # as resolved in the model (the parameter's name there)
    original: Any  # 0-d tensor on the CPU, same dtype as the parameter: the exact bits to put back
    override_key: str | None  # key added to an offload loader's in-memory state dict, removed on restore


@dataclass(frozen=True)
class Saved:
    """What ``apply``/``assign`` changed, in order; hand it to ``restore`` to put every bit back."""

    changes: tuple[_Change, ...]

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(c.target for c in self.changes)

    def __len__(self) -> int:
        return len(self.changes)


def _one_target(item: Any) -> Target:
    if isinstance(item, Target):
        return item
    if isinstance(item, Mapping):
        if "tensor" not in item or "index" not in item:
            raise SurgeryError(
                f"a weight given as a dict needs 'tensor' and 'index' (registry format), got keys {sorted(item)}"
            )
        tensor, index = item["tensor"], item["index"]
    elif hasattr(item, "tensor") and hasattr(item, "index"):
        tensor, index = item.tensor, item.index
    elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        tensor, index = item
    else:
        raise SurgeryError(
            f"cannot read a weight from {type(item).__name__}: pass an Entry, Claim objects, "
            "registry-format dicts with 'tensor' and 'index', or (tensor, index) pairs"
        )
    try:
        if isinstance(index, (str, bytes)) or any(isinstance(i, bool) for i in index):
            raise TypeError
        idx = tuple(operator.index(i) for i in index)  # integers only: 3.0, "3" or True are mistakes, not indices
    except TypeError:
        raise SurgeryError(f"{tensor}: index {index!r} is not a sequence of integers") from None
    if not idx or any(i < 0 for i in idx):
        raise SurgeryError(f"{tensor}: index {list(idx)} must be non-negative integers")
    return Target(str(tensor), idx)


def _items(weights: Any) -> Iterable[Any]:
    """The individual weights in ``weights``: an Entry's or entry dict's super weights, one weight, or each of many."""
    if hasattr(weights, "weights_to_keep") and hasattr(weights, "claims"):
        return weights.super_weights
    if isinstance(weights, Mapping) and "claims" in weights:
        return super_weights(claims_of(weights))
    if isinstance(weights, (Mapping, Target)) or hasattr(weights, "tensor"):
        return [weights]
    if isinstance(weights, tuple) and len(weights) == 2 and isinstance(weights[0], str):
        return [weights]
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Iterable):
        raise SurgeryError(
            f"cannot read weights from {type(weights).__name__}: pass an Entry, Claim objects, "
            "registry-format dicts with 'tensor' and 'index', or (tensor, index) pairs"
        )
    return weights


def targets(weights: Any) -> tuple[Target, ...]:
    """The scalars named by ``weights``, each once, in order.

    ``weights`` may be an Entry or entry dict (its ``super_weights``: standing claims measured critical, or
    published ones nobody has measured yet; ``swindex.claims.super_weights``), one Claim or registry-format dict,
    or an iterable of Claim objects, dicts, Targets or ``(tensor, index)`` pairs.
    """
    seen: dict[tuple[str, tuple[int, ...]], Target] = {}
    for item in _items(weights):
        t = _one_target(item)
        seen.setdefault((t.tensor, t.index), t)
    return tuple(seen.values())


def read_value(model: Any, weight: Any) -> float:
    """The current value of one scalar as a Python float."""
    target = targets([weight])[0]
    return read_scalar(model, target.tensor, target.index)


def read_values(model: Any, weights: Any) -> dict[str, float]:
    """``{coordinate: current value}`` for every scalar named by ``weights``."""
    return {t.coordinate: read_value(model, t) for t in targets(weights)}


def _edit(model: Any, changes: Iterable[tuple[Target, Callable[[Any], Any]]]) -> Saved:
    """Set each target to ``new_value(original)``; on any failure undo what was done and re-raise."""
    import torch

    done: list[_Change] = []
    try:
        for target, new_value in changes:
            name = resolve_name(model, target.tensor)
            tensor, override = slot(model, name).writable()
            check_index(target.tensor, tuple(tensor.shape), target.index)
            original = tensor[target.index].detach().to("cpu", copy=True)
            done.append(_Change(Target(name, target.index), original, override))
            with torch.no_grad():
                tensor[target.index] = torch.as_tensor(new_value(original), dtype=tensor.dtype).to(tensor.device)
    except BaseException:
        restore(model, Saved(tuple(done)))
        raise
    return Saved(tuple(done))


def assign(model: Any, values: Mapping[Any, float] | Iterable[tuple[Any, float]]) -> Saved:
    """Set scalars to given values (``{target: value}`` or ``[(weight, value), ...]``); returns what to restore."""
    pairs = values.items() if isinstance(values, Mapping) else values
    wanted: dict[Target, float] = {}
    for weight, value in pairs:
        wanted[targets([weight])[0]] = float(value)
    return _edit(model, [(t, lambda _original, v=v: v) for t, v in wanted.items()])


def apply(model: Any, weights: Any, factor: float = 0.0) -> Saved:
    """Multiply each scalar named by ``weights`` by ``factor`` (0 zeroes it); returns what ``restore`` needs.

    The paper scales super weights by 0 to 3; any finite factor is accepted. Products are computed in
    float64 and rounded once to the parameter's dtype.
    """
    factor = float(factor)
    if not math.isfinite(factor):
        raise SurgeryError(f"scale factor must be a finite number, got {factor}")
    import torch

    def scale(original: Any) -> Any:
        if factor == 0.0:  # a plain +0.0, not -0.0 for negative weights
            return torch.zeros_like(original)
        return (original.to(torch.float64) * factor).to(original.dtype)

    return _edit(model, [(t, scale) for t in targets(weights)])


def restore(model: Any, saved: Saved) -> None:
    """Put back every scalar ``saved`` records, bit for bit, newest change first; drop offload overrides."""
    import torch

    errors: list[str] = []
    for change in reversed(saved.changes):
        try:
            place = slot(model, change.target.tensor)
            tensor, _ = place.writable()
            with torch.no_grad():
                tensor[change.target.index] = change.original.to(tensor.device)
            place.drop_override(change.override_key)
        except Exception as exc:  # noqa: BLE001 - keep restoring the others, then report
            errors.append(f"{change.target.coordinate}: {exc}")
    if errors:
        raise SurgeryError("could not restore " + "; ".join(errors))


@contextmanager
def zeroed(model: Any, weights: Any) -> Iterator[Saved]:
    """Within the block the weights are 0; on exit (also on error) they are restored bit for bit."""
    saved = apply(model, weights, 0.0)
    try:
        yield saved
    finally:
        restore(model, saved)


@contextmanager
def scaled(model: Any, weights: Any, factor: float) -> Iterator[Saved]:
    """Within the block the weights are multiplied by ``factor``; on exit they are restored bit for bit."""
    saved = apply(model, weights, factor)
    try:
        yield saved
    finally:
        restore(model, saved)


@dataclass(frozen=True)
class Channel:
    """Where a super weight acts: its module, output channel (the super activation's), input channel, expert."""

    module: str
    row: int
    column: int
    expert: int | None


def _field(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def channels(model: Any, weights: Any) -> tuple[Channel, ...]:
    """The module and (row, column, expert) of each weight, resolved in ``model``.

    Row and column come from the claim when it has them (Claim, registry dict); for bare
    ``(tensor, index)`` pairs they follow the layout: ``[row, col]`` for Linear, ``[col, row]`` for Conv1D,
    and for 3-D expert tensors ``[expert, row, col]`` when the middle dimension is the hidden size.
    """
    result: dict[Channel, None] = {}
    for item in _items(weights):
        target = _one_target(item)
        name = resolve_name(model, target.tensor)
        module_name = name.rsplit(".", 1)[0]
        row, column, expert = _field(item, "row"), _field(item, "column"), _field(item, "expert")
        if row is None or column is None:
            row, column, expert = _layout(model, name, target.index)
        result[Channel(module_name, int(row), int(column), None if expert is None else int(expert))] = None
    return tuple(result)


def _layout(model: Any, name: str, index: tuple[int, ...]) -> tuple[int, int, int | None]:
    """(row, column, expert) of a stored index: from the detector's map of the down projections when it has
    ``name``, else guessed from the module and shapes; `swindex.layout` inverts the index either way."""
    from .detection.arch import locate
    from .errors import UnsupportedModelError

    try:
        site = next((s for s in locate(model).sites if s.tensor == name), None)
    except UnsupportedModelError:
        site = None
    module = model.get_submodule(name.rsplit(".", 1)[0])
    fused = len(index) == 3
    if site is not None:
        transposed, fused, expert = site.stored_transposed, site.kind == "experts", site.expert
    elif fused:  # not a down projection: guess from the shapes
        hidden = getattr(getattr(model, "config", None), "hidden_size", None)
        transposed, expert = hidden is not None and tuple(model.get_parameter(name).shape)[1] != hidden, None
    else:
        transposed, expert = module_stores_transposed(module), None
    try:
        return coordinate_of(index, transposed=transposed, fused=fused, expert=expert)
    except ValueError as exc:
        raise SurgeryError(f"{name}: {exc}") from None
