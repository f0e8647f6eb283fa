"""swindex keep: the weights to keep in each quantizer's own words, checked against how each library reads them."""

from __future__ import annotations

import ast
import csv
import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swindex.errors import SwindexError
from swindex.keep import FORMATS, KeepError, keep_for, tool_name
from swindex.records import Entry

MODULE_TOOLS = ("bitsandbytes", "llm-compressor", "autoround", "gptqmodel")


def _claim(base: dict, layer: int, row: int, column: int, impact: str = "critical", status: str = "detected") -> dict:
    tensor = f"model.layers.{layer}.mlp.down_proj.weight"
    classification = (
        {"classification": impact, "measured_by": "swindex"}
        if impact != "unmeasured"
        else {"classification": "unmeasured"}
    )
    return dict(
        base,
        layer=layer,
        tensor=tensor,
        row=row,
        column=column,
        index=[row, column],
        status=status,
        impact=classification,
        sources=[{"citation": "swindex test", "kind": "swindex", "evidence": "detected"}],
    )


@pytest.fixture
def entry(make_entry) -> Entry:
    """Layer 1: a super weight and a significant one; layer 2: an inert claim; layer 3: a withdrawn one."""
    base = make_entry()["claims"][0]
    claims = [
        _claim(base, 1, 3, 7),
        _claim(base, 1, 3, 9, "significant"),
        _claim(base, 2, 5, 5, "inert"),
        _claim(base, 3, 1, 1, "critical", "withdrawn"),
    ]
    return Entry.from_dict(make_entry(claims=claims))


@pytest.mark.parametrize("tool", list(FORMATS))
def test_every_export_holds_exactly_the_weights_to_keep(entry, tool):
    export = entry.keep_for(tool)
    assert [w.coordinate for w in export.weights] == [c.coordinate for c in entry.weights_to_keep]
    assert export.held == "1 super weight, 1 significant weight"


@pytest.mark.parametrize("tool", MODULE_TOOLS)
def test_module_exports_name_the_module_holding_each_weight_and_no_other(entry, tool):
    export = entry.keep_for(tool)
    assert export.modules == ("model.layers.1.mlp.down_proj",)
    names = set(re.findall(r"model\\*\.layers\\*\.\d+\\*\.mlp\\*\.down_proj", export.text))
    assert {n.replace("\\", "") for n in names} == {"model.layers.1.mlp.down_proj"}


@pytest.mark.parametrize("tool", [t for t in FORMATS if FORMATS[t].language == "python"])
def test_python_snippets_are_valid_python(entry, tool):
    ast.parse(entry.keep_for(tool).text)


def test_bitsandbytes_skip_list_keeps_what_transformers_would_have_skipped(entry):
    """A skip list replaces transformers' default one (the output layer), so the export names lm_head too."""
    pytest.importorskip("transformers")
    from transformers.quantizers.quantizers_utils import should_convert_module

    export = entry.keep_for("bitsandbytes")
    skip = ast.literal_eval(re.search(r"llm_int8_skip_modules=(\[.*?\])", export.text).group(1))
    assert "lm_head" in skip
    assert not should_convert_module("model.layers.1.mlp.down_proj", skip)
    assert should_convert_module("model.layers.11.mlp.down_proj", skip)
    assert should_convert_module("model.layers.1.mlp.up_proj", skip)


def _tensor_type_patterns(text: str) -> list[tuple[str, str]]:
    return [tuple(arg.rsplit("=", 1)) for arg in re.findall(r"--tensor-type '([^']+)'", text)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # make_entry is a pure factory
@given(layer=st.integers(0, 150), other=st.integers(0, 150))
def test_llama_cpp_override_matches_its_own_tensor_and_no_other(make_entry, layer, other):
    """llama-quantize applies each pattern with regex_search to every tensor name (src/llama-quant.cpp)."""
    base = make_entry()["claims"][0]
    export = keep_for(make_entry(claims=[_claim(base, layer, 3, 7)]), "llama.cpp")
    ((pattern, held),) = _tensor_type_patterns(export.text)
    assert held == "q8_0"
    assert re.search(pattern, f"blk.{layer}.ffn_down.weight")
    for name in (f"blk.{layer}.ffn_down_exps.weight", f"blk.{layer}.ffn_up.weight", f"blk.{layer}.attn_q.weight"):
        assert not re.search(pattern, name)
    if other != layer:
        assert not re.search(pattern, f"blk.{other}.ffn_down.weight")


def test_llama_cpp_says_it_cannot_keep_a_scalar_and_what_the_tensor_costs(entry):
    export = entry.keep_for("llama.cpp")
    assert any("cannot keep one scalar" in note for note in export.notes)
    elements = 64 * 172
    assert any(f"({elements:,} weights)" in note and "bytes" in note for note in export.notes)
    assert any(
        note.endswith("+0 bytes") for note in entry.keep_for("llama.cpp", held_type="Q4_K", base_type="Q4_K").notes
    )


def test_llama_cpp_cost_grows_with_the_held_type(entry):
    def cost(held: str) -> int:
        note = next(n for n in entry.keep_for("llama.cpp", held_type=held).notes if n.endswith("bytes"))
        return int(note.rsplit(":", 1)[1].split()[0].replace(",", ""))

    assert 0 < cost("Q5_K") < cost("Q8_0") < cost("F16") < cost("F32")


def test_an_unknown_ggml_type_is_an_error_naming_it(entry):
    with pytest.raises(KeepError, match="'Q3_X' is not a GGML tensor type"):
        entry.keep_for("llama.cpp", held_type="Q3_X")


def test_gptqmodel_negative_match_selects_the_module_alone(entry):
    """GPTQModel skips a module whose full name re.match-es a "-:" key of QuantizeConfig.dynamic."""
    text = entry.keep_for("gptqmodel").text
    dynamic = ast.literal_eval(re.search(r"dynamic=(\{.*?\}\})", text).group(1))
    (key,) = dynamic
    assert key.startswith("-:") and dynamic[key] == {}
    pattern = key.removeprefix("-:")
    assert re.match(pattern, "model.layers.1.mlp.down_proj")
    assert not re.match(pattern, "model.layers.11.mlp.down_proj")
    assert not re.match(pattern, "model.layers.1.mlp.down_proj_extra")


def test_autoround_keeps_the_module_at_16_bit_float(entry):
    text = entry.keep_for("autoround").text
    config = ast.literal_eval(re.search(r"layer_config = (\{.*\})", text).group(1))
    assert config == {"model.layers.1.mlp.down_proj": {"bits": 16, "data_type": "fp"}}


def test_autoawq_says_it_keeps_the_projection_in_every_layer(entry):
    export = entry.keep_for("autoawq")
    assert '"modules_to_not_convert": ["mlp.down_proj"]' in export.text
    assert any("cannot keep one layer" in n and "all 4 layers" in n for n in export.notes)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    layer=st.integers(0, 3), row=st.integers(0, 63), column=st.integers(0, 171), expert=st.none() | st.integers(0, 7)
)
def test_json_and_csv_carry_both_indices_of_every_weight(make_entry, layer, row, column, expert):
    base = make_entry()["claims"][0]
    claim = _claim(base, layer, row, column)
    if expert is not None:
        claim.update(tensor=f"model.layers.{layer}.mlp.experts.down_proj", expert=expert, index=[expert, row, column])
    data = make_entry(claims=[claim])
    (weight,) = json.loads(keep_for(data, "json").text)["weights"]
    assert weight["index"] == claim["index"]
    assert weight["gguf_index"] == ([column, row] if expert is None else [column, row, expert])
    assert weight["gguf_tensor"] == (
        f"blk.{layer}.ffn_down.weight" if expert is None else f"blk.{layer}.ffn_down_exps.weight"
    )
    (row_read,) = list(csv.DictReader(io.StringIO(keep_for(data, "csv").text)))
    assert row_read["coordinate"] == weight["coordinate"]
    assert [int(i) for i in row_read["gguf_index"].split()] == weight["gguf_index"]
    assert row_read["impact"] == weight["impact"] == "critical"


@pytest.mark.parametrize(
    ("alias", "tool"),
    [
        ("GGUF", "llama.cpp"),
        ("bnb", "bitsandbytes"),
        ("compressed-tensors", "llm-compressor"),
        ("auto-round", "autoround"),
        ("GPTQ", "gptqmodel"),
        ("AWQ", "autoawq"),
    ],
)
def test_aliases_name_their_tool(alias, tool):
    assert tool_name(alias) == tool


def test_an_unknown_tool_is_an_error_listing_every_tool():
    with pytest.raises(SwindexError) as caught:
        tool_name("onnx\x1b[2J")
    message = str(caught.value)
    assert "\x1b" not in message and "\n" not in message
    assert all(tool in message for tool in FORMATS)


def test_an_entry_with_nothing_to_keep_is_an_error_naming_the_model(make_entry):
    base = make_entry()["claims"][0]
    data = make_entry(claims=[_claim(base, 2, 5, 5, "inert")])
    with pytest.raises(KeepError, match="acme/tiny-llama: no weight to keep"):
        keep_for(data, "json")


def test_cli_prints_the_export_on_stdout_and_the_notes_on_stderr(entry, write_registry, capsys):
    from swindex.cli import main

    registry = write_registry(entry.to_dict())
    assert main(["keep", "acme/tiny-llama", "--for", "llama.cpp", "--registry", str(registry)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# hold") and "llama-quantize --tensor-type" in out
    assert "keeps 1 super weight, 1 significant weight" in err and "cannot keep one scalar" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["keep", "acme/tiny-llama", "--for", "onnx"], "no export for 'onnx'"),
        (["keep", "acme/nobody", "--for", "json"], "no swindex entry for model 'acme/nobody'"),
    ],
)
def test_cli_errors_are_one_line_with_exit_1(entry, write_registry, capsys, args, words):
    from swindex.cli import main

    registry = write_registry(entry.to_dict())
    assert main([*args, "--registry", str(registry)]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
