"""Read and write single parameters of a loaded model by name and index, in memory or offloaded by accelerate.

Why one module: surgery, quantization and detection all need a parameter's real values, and an offloaded
parameter (left on the ``meta`` device by accelerate) keeps them elsewhere: in the weights map of the
``AlignDevicesHook`` on its module (found with accelerate's ``has_offloaded_params``; on an ancestor when
the hook holds a whole block). Edits go to that map: in place when it holds the tensor in memory,
otherwise through an in-memory override (``Slot.writable``) that ``Slot.drop_override`` removes again, so
checkpoint files on disk are never written. accelerate's ``align_module_device`` is not used: it loads
every parameter of a module and puts them back on ``meta`` on exit, which drops edits to disk-offloaded
weights and copies more than one tensor for a read.

    from swindex.params import resolve_name, slot
    s = slot(model, resolve_name(model, "model.layers.2.mlp.down_proj.weight"))
    tensor, override = s.writable()     # edit tensor in place under torch.no_grad()
    ...
    s.drop_override(override)           # once the original values are back
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SurgeryError

__all__ = [
    "Slot",
    "slot",
    "resolve_name",
    "resolve_module",
    "check_index",
    "read_tensor",
    "read_scalar",
    "materialised",
]


def _prefixes(model: Any) -> list[str]:
    prefix = getattr(model, "base_model_prefix", "") or ""
    return [prefix] if prefix else []


def resolve_name(model: Any, name: str) -> str:
    """The name ``name`` has in ``model``: as given, or with the base-model prefix added or removed.

    An entry names tensors as in the model class it was measured on (``model.layers.2...`` for
    ``LlamaForCausalLM``); the same weights in a bare ``LlamaModel`` are ``layers.2...``.
    """
    names = dict(model.named_parameters(remove_duplicate=False))
    if name in names:
        return name
    for prefix in _prefixes(model):
        if name.startswith(prefix + ".") and name[len(prefix) + 1 :] in names:
            return name[len(prefix) + 1 :]
        if f"{prefix}.{name}" in names:
            return f"{prefix}.{name}"
    raise SurgeryError(
        f"{name}: no such parameter in this {type(model).__name__}; the entry may be for another "
        "architecture (check `swindex lookup` against the model you loaded)"
    )


def resolve_module(model: Any, name: str) -> Any:
    """The submodule called ``name`` (prefix-tolerant like ``resolve_name``)."""
    candidates = [name]
    for prefix in _prefixes(model):
        if name.startswith(prefix + "."):
            candidates.append(name[len(prefix) + 1 :])
        candidates.append(f"{prefix}.{name}")
    for cand in candidates:
        try:
            return model.get_submodule(cand)
        except AttributeError:
            continue
    raise SurgeryError(f"{name}: no such module in this {type(model).__name__}")


def check_index(name: str, shape: tuple[int, ...], index: tuple[int, ...]) -> None:
    """Refuse an index that does not fit the tensor's shape (an entry for another size or revision)."""
    if len(index) != len(shape) or any(i >= s for i, s in zip(index, shape)):
        raise SurgeryError(
            f"{name}{list(index)} is outside the tensor's shape {list(shape)}: the entry does not fit this "
            "model (another size or revision?)"
        )


def _offload_hooks(module: Any) -> tuple[Any, ...]:
    """The accelerate hooks on ``module`` that keep weights offloaded (a SequentialHook chains several)."""
    from accelerate.utils import has_offloaded_params

    if has_offloaded_params(module):
        return (module._hf_hook,)
    chained = getattr(getattr(module, "_hf_hook", None), "hooks", None) or ()
    return tuple(h for h in chained if getattr(h, "offload", False))


def _offload_store(root: Any, name: str) -> tuple[Any, str]:
    """The mapping that holds an offloaded parameter's values, and its key there.

    The weights map is a PrefixedDataset over an OffloadedWeightsLoader (or a plain dict), keyed by the name
    relative to the hooked module; the prefixes are unwrapped so that the key reaches the loader itself.
    """
    parts = name.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        module_name = ".".join(parts[:cut])
        module = root.get_submodule(module_name) if module_name else root
        for hook in _offload_hooks(module):
            weights_map = getattr(hook, "weights_map", None)
            if weights_map is None:
                continue
            store, key = weights_map, ".".join(parts[cut:])
            while hasattr(store, "dataset") and hasattr(store, "prefix"):
                key = f"{store.prefix}{key}"
                store = store.dataset
            try:
                store[key]
            except KeyError:
                continue
            return store, key
    raise SurgeryError(
        f"{name} is on the meta device but no accelerate hook holds its values; load the model with "
        "its weights (or with accelerate offloading) before editing it"
    )


@dataclass(frozen=True)
class Slot:
    """One floating-point parameter of a model, live or offloaded: where to read it and where edits land."""

    name: str
    parameter: Any
    store: Any = None  # the offload store holding the values (None: they live in ``parameter``)
    key: str | None = None

    @property
    def offloaded(self) -> bool:
        return self.store is not None

    def values(self) -> Any:
        """The parameter's current values (for an offloaded one, as its store hands them out); do not edit them."""
        return self.store[self.key] if self.offloaded else self.parameter.data

    def writable(self) -> tuple[Any, str | None]:
        """A tensor whose edits reach the model, and the override key added to make it so (if any)."""
        if not self.offloaded:
            return self.parameter.data, None
        state_dict = getattr(self.store, "state_dict", None)
        if isinstance(state_dict, dict):  # accelerate's OffloadedWeightsLoader: memory first, then disk
            if self.key in state_dict:
                return state_dict[self.key], None
            state_dict[self.key] = self.store[self.key].detach().clone()
            return state_dict[self.key], self.key
        if isinstance(self.store, Mapping):
            return self.store[self.key], None
        raise SurgeryError(f"{self.name}: cannot edit an offload store of type {type(self.store).__name__}")

    def drop_override(self, key: str | None) -> None:
        """Remove an override ``writable`` added, so the store reads from disk again."""
        if key is not None:
            self.store.state_dict.pop(key, None)


def slot(model: Any, name: str) -> Slot:
    """The slot of parameter ``name`` (its exact name in ``model``; see ``resolve_name``)."""
    try:
        parameter = model.get_parameter(name)
    except AttributeError:
        raise SurgeryError(f"{name}: no such parameter in this {type(model).__name__}") from None
    if not parameter.dtype.is_floating_point:
        raise SurgeryError(
            f"{name} is stored as {parameter.dtype} (a quantized checkpoint?): surgery needs floating-point "
            "weights; load the model unquantized"
        )
    if parameter.device.type != "meta":
        return Slot(name, parameter)
    store, key = _offload_store(model, name)
    return Slot(name, parameter, store, key)


def read_tensor(model: Any, name: str) -> Any:
    """A parameter's current values (read from the offload store when it is offloaded); do not edit them."""
    return slot(model, resolve_name(model, name)).values()


def read_scalar(model: Any, name: str, index: tuple[int, ...]) -> float:
    """The current value of one scalar as a Python float."""
    values = slot(model, resolve_name(model, name)).values()
    check_index(name, tuple(values.shape), index)
    return float(values[index].item())


def materialised(module: Any, name: str) -> Any:
    """A module's own tensor ``name`` with real values, also when accelerate offloaded it (then read from its
    offload store, on CPU or disk: callers move what they use to the activations' device); None stays None."""
    tensor = getattr(module, name)
    if tensor is None or tensor.device.type != "meta":
        return tensor
    store, key = _offload_store(module, name)
    return store[key]
