"""swindex._dtypes: the one dtype name, the dtype and device policy, and the one memory budget."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from swindex import _dtypes
from swindex._dtypes import (
    DTYPE_BYTES,
    MEMORY_SHARE,
    checkpoint_dtype,
    choose_dtype,
    dtype_name,
    fallback_dtype,
    memory_budget,
    supported_dtype,
)
from swindex.errors import DetectionError

GIB = 2**30


def config(model_type: str, dtype: str) -> SimpleNamespace:
    return SimpleNamespace(model_type=model_type, dtype=dtype)


@pytest.fixture
def free_memory(monkeypatch):
    """Pretend this machine has 10 GiB free, whatever the other processes on it are doing."""
    monkeypatch.setattr(_dtypes, "available_memory", lambda device="cpu": 10 * GIB)
    return 10 * GIB


@pytest.mark.parametrize("name", ["float32", "bfloat16", "float16", "int8", "float64"])
def test_a_torch_dtype_is_named_without_its_module(name):
    torch = pytest.importorskip("torch")
    assert dtype_name(getattr(torch, name)) == name


@pytest.mark.parametrize("text", ["float32", "torch.bfloat16", "float16"])
def test_a_dtype_written_as_text_gets_the_same_name(text):
    assert dtype_name(text) == text.removeprefix("torch.")


@pytest.mark.parametrize("name", sorted(DTYPE_BYTES))
def test_the_dtypes_the_registry_records_are_supported(name):
    assert supported_dtype(f"torch.{name}") == name


def test_a_dtype_the_registry_cannot_record_is_an_error_saying_what_to_load_instead():
    with pytest.raises(DetectionError, match="unsupported parameter dtype int8; load the model in float32"):
        supported_dtype("torch.int8")


def test_the_supported_dtypes_are_the_schemas_enum():
    from swindex.schema import entry_schema

    fields = [node["properties"]["dtype"] for node in _walk(entry_schema()) if "dtype" in _properties(node)]
    enums = [field["enum"] for field in fields if "enum" in field]
    assert enums and all(list(enum) == list(DTYPE_BYTES) for enum in enums)


def _properties(node):
    return node.get("properties", {}) if isinstance(node, dict) else {}


def _walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _walk(child)


@pytest.mark.parametrize("saved, expected", [("torch.bfloat16", "bfloat16"), ("float16", "float16"), ("int4", None)])
def test_the_checkpoint_dtype_is_read_from_its_config(saved, expected):
    assert checkpoint_dtype(config("llama", saved)) == expected


def test_auto_on_cuda_avoids_float16_for_families_that_overflow():
    chosen, notes = choose_dtype(config("gemma2", "float16"), "auto", "cuda")
    assert chosen == "bfloat16" and "overflow" in notes[0]


def test_auto_on_cuda_keeps_the_checkpoint_dtype_otherwise():
    assert choose_dtype(config("llama", "float16"), "auto", "cuda")[0] == "float16"


def test_auto_on_cpu_uses_float32_when_it_fits(free_memory):
    assert choose_dtype(config("llama", "bfloat16"), "auto", "cpu", parameters=1_000_000)[0] == "float32"


def test_auto_on_cpu_uses_bfloat16_when_float32_would_not_fit_the_budget(free_memory):
    parameters = int(MEMORY_SHARE * free_memory) // 4 + 1
    chosen, notes = choose_dtype(config("llama", "float32"), "auto", "cpu", parameters=parameters)
    assert chosen == "bfloat16" and "would not fit" in notes[0]


def test_auto_on_cpu_respects_the_callers_memory_cap(free_memory):
    parameters = 1_000_000
    assert choose_dtype(config("llama", "float32"), "auto", "cpu", parameters, {"cpu": 4 * parameters})[0] == "float32"
    assert choose_dtype(config("llama", "float32"), "auto", "cpu", parameters, {"cpu": 4 * parameters - 1})[0] == (
        "bfloat16"
    )


def test_explicit_float16_on_an_overflowing_family_is_honoured_with_a_warning():
    chosen, notes = choose_dtype(config("gemma", "bfloat16"), "float16", "cpu")
    assert chosen == "float16" and "fall back" in notes[0]


def test_fallback_is_only_for_float16():
    assert fallback_dtype("float16", "cuda") == "bfloat16"
    assert fallback_dtype("float16", "cpu") == "float32"
    assert fallback_dtype("bfloat16", "cuda") is None


def test_unknown_dtype_is_refused():
    with pytest.raises(DetectionError, match="unknown dtype"):
        choose_dtype(config("llama", "float32"), "float8", "cpu")


def test_the_budget_is_a_share_of_the_memory_available(free_memory):
    assert memory_budget("cpu") == int(MEMORY_SHARE * free_memory)


@pytest.mark.parametrize("cap, expected", [(123_456, 123_456), ("2GiB", 2 * GIB), ("500MB", 500_000_000)])
def test_the_budget_is_the_callers_cap_when_given(free_memory, cap, expected):
    assert memory_budget("cpu", {"cpu": cap, 0: "1GiB"}) == expected


def test_a_cap_for_another_device_leaves_the_cpu_budget_alone(free_memory):
    assert memory_budget("cpu", {0: "1GiB"}) == int(MEMORY_SHARE * free_memory)


@pytest.mark.parametrize("cap", ["lots", -1, 1.5, True])
def test_a_malformed_cap_is_a_one_line_error_naming_it(free_memory, cap):
    with pytest.raises(DetectionError, match="max_memory size .* is not a byte count"):
        memory_budget("cpu", {"cpu": cap})


def test_the_budget_on_this_machine_is_positive_and_below_what_is_free():
    pytest.importorskip("psutil")
    import psutil

    budget = memory_budget("cpu")
    assert 0 < budget < psutil.virtual_memory().total
