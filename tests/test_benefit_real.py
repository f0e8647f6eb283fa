"""SmolLM2-135M-Instruct's recorded "what keeping buys" table is reproduced by re-measuring a few cheap schemes."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import REPO
from swindex import lookup
from swindex.benefit import advice_for_tool

pytestmark = pytest.mark.slow

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
CHEAP = ("rtn-w4-g128", "a-int8-tensor-dynamic")


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("measure_benefit", REPO / "scripts" / "measure_benefit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def remeasured(harness, smollm2_gguf):
    recorded = lookup(MODEL_ID).benefit
    assert recorded is not None, "the entry carries no evidence.keep_benefit"
    calibration = int(recorded.calibration.split("windows ")[1].split("-")[1].split(" ")[0]) - recorded.chunks
    length = recorded.tokens // recorded.chunks + 1
    subject = harness.load(smollm2_gguf, MODEL_ID, (), recorded.chunks, length, calibration)
    return recorded, harness.torch_rows(subject, CHEAP)


@pytest.mark.parametrize("scheme", CHEAP)
def test_the_recorded_change_is_reproduced_within_its_error(remeasured, scheme):
    recorded, rows = remeasured
    for row in (r for r in rows if r.scheme == scheme):
        (before,) = [r for r in recorded.for_scheme(scheme) if r.kept == row.kept]
        assert row.quantized == pytest.approx(before.quantized, rel=0.01)
        assert abs(row.change - before.change) <= 2 * before.error + 1e-3
        assert row.verdict == before.verdict


def test_llm_compressor_advice_names_layer_11_down_proj_under_per_token_and_per_tensor_activations():
    lines = advice_for_tool(lookup(MODEL_ID).benefit, "llm-compressor")
    mine = [line for line in lines if "`model.layers.11.mlp.down_proj`" in line]
    assert any("per token" in line for line in mine) and any("per tensor" in line for line in mine)
