"""swindex.layout: one map between (row, column, expert) and stored indices, for checkpoints and GGUF."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swindex import layout
from swindex.layout import gguf_tensor_names, module_stores_transposed


@pytest.mark.parametrize(
    ("transposed", "fused", "expected"),
    [
        (False, False, (3, 7)),
        (True, False, (7, 3)),
        (False, True, (2, 3, 7)),
        (True, True, (2, 7, 3)),
    ],
)
def test_stored_index_puts_row_and_column_where_the_layout_stores_them(
    transposed: bool, fused: bool, expected: tuple[int, ...]
) -> None:
    assert layout.stored_index(3, 7, 2 if fused else None, transposed=transposed, fused=fused) == expected


@pytest.mark.parametrize(("transposed", "fused"), list(itertools.product([False, True], repeat=2)))
def test_coordinate_of_inverts_stored_index(transposed: bool, fused: bool) -> None:
    for row, column, expert in [(0, 1, 0), (5, 2, 3), (4095, 11007, 63)]:
        index = layout.stored_index(row, column, expert if fused else None, transposed=transposed, fused=fused)
        assert layout.coordinate_of(index, transposed=transposed, fused=fused) == (
            row,
            column,
            expert if fused else None,
        )


def test_an_unfused_expert_keeps_the_expert_its_name_gives() -> None:
    assert layout.coordinate_of((940, 711), expert=68) == (940, 711, 68)


def test_a_fused_index_needs_an_expert() -> None:
    with pytest.raises(ValueError, match="expert"):
        layout.stored_index(1, 2, None, fused=True)


def test_an_index_of_the_wrong_rank_is_refused() -> None:
    with pytest.raises(ValueError, match="fused expert"):
        layout.coordinate_of((1, 2), fused=True)
    with pytest.raises(ValueError, match="two-dimensional"):
        layout.coordinate_of((0, 1, 2))


@pytest.mark.parametrize(
    ("architecture", "order"),
    [
        ("LlamaForCausalLM", "linear"),
        ("Qwen3MoeForCausalLM", "linear"),
        ("BertModel", "linear"),
        ("GPT2LMHeadModel", "transposed"),
        ("GPT2Model", "transposed"),
        ("OpenAIGPTLMHeadModel", "transposed"),
        ("DecisionTransformerGPT2Model", "transposed"),
        ("GptOssForCausalLM", "transposed"),
        ("AriaForConditionalGeneration", "either"),
        ("OpenAIPrivacyFilterForTokenClassification", "either"),
    ],
)
def test_index_order_of_known_architectures(architecture: str, order: str) -> None:
    assert layout.index_order(architecture) == order


@pytest.mark.parametrize(
    "architecture", ["CustomGPTForCausalLM", "MyRemoteCodeModel", "Llamafied", "Llama5ForCausalLM", ""]
)
def test_an_architecture_the_table_does_not_know_may_use_either_order(architecture: str) -> None:
    assert layout.index_order(architecture) == "either"


def test_the_longest_known_prefix_decides() -> None:
    # GPTNeoX is not GPTNeo, Qwen2Moe is not Qwen2: the longer name is matched first, whatever the table order.
    assert layout.index_order("GPTNeoXForCausalLM") == layout.index_order("GPTNeoForCausalLM") == "linear"
    assert layout.index_order("GptOssForCausalLM") == "transposed"


def test_gguf_tensor_names_follow_llama_cpp() -> None:
    assert layout.gguf_tensor_name(11) == "blk.11.ffn_down.weight"
    assert layout.gguf_tensor_name(3, expert=68) == "blk.3.ffn_down_exps.weight"
    assert layout.gguf_tensor_name(3, shared=True) == "blk.3.ffn_down_shexp.weight"


def test_gguf_index_is_fastest_dimension_first_and_the_array_index_is_reversed() -> None:
    assert layout.gguf_index(507, 1229) == (1229, 507)
    assert layout.gguf_index(940, 711, 68) == (711, 940, 68)
    assert layout.gguf_array_index(507, 1229) == (507, 1229)
    assert layout.gguf_array_index(940, 711, 68) == (68, 940, 711)
    assert layout.gguf_array_index(940, 711, 68) == tuple(reversed(layout.gguf_index(940, 711, 68)))


def test_a_gguf_writer_stores_the_array_index_order() -> None:
    """The gguf package writes a numpy [rows, columns] array as ne = [columns, rows]:
    the reader gives it back indexed [row, column]."""
    np = pytest.importorskip("numpy")
    gguf = pytest.importorskip("gguf")
    import tempfile
    from pathlib import Path

    weight = np.arange(6 * 64, dtype=np.float32).reshape(6, 64)  # 6 rows (hidden), 64 columns (intermediate)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_tensor(layout.gguf_tensor_name(0), weight)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tensor = gguf.GGUFReader(str(path)).tensors[0]
        assert tensor.name == "blk.0.ffn_down.weight"
        assert [int(n) for n in tensor.shape] == [64, 6]  # ne0 = columns
        assert tensor.data[layout.gguf_array_index(5, 40)] == weight[5, 40]


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
def test_gguf_array_index_matches_transformers_on_a_real_gguf(smollm2_gguf) -> None:  # noqa: ANN001
    """transformers dequantizes SmolLM2's GGUF into model.layers.N.mlp.down_proj.weight[row, column]:
    same numbers, same index."""
    pytest.importorskip("accelerate")
    gguf = pytest.importorskip("gguf")
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    reader = gguf.GGUFReader(str(smollm2_gguf))
    tensors = {t.name: t for t in reader.tensors}
    model = AutoModelForCausalLM.from_pretrained(
        str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name, dtype=torch.float32
    )
    for layer in (0, 11, 29):
        stored = tensors[layout.gguf_tensor_name(layer)]
        ours = gguf.quants.dequantize(stored.data, stored.tensor_type)
        theirs = model.model.layers[layer].mlp.down_proj.weight.detach().numpy()
        assert ours.shape == theirs.shape
        for row, column in [(507, 1229), (0, 1535), (575, 0)]:
            assert ours[layout.gguf_array_index(row, column)] == theirs[row, column]


@pytest.mark.parametrize(
    "tensor, layer, expert, expected",
    [
        ("model.layers.3.mlp.down_proj.weight", 3, None, ("blk.3.ffn_down.weight",)),
        ("model.layers.3.mlp.shared_expert.down_proj.weight", 3, None, ("blk.3.ffn_down_shexp.weight",)),
        ("model.layers.3.mlp.shared_experts.down_proj.weight", 3, None, ("blk.3.ffn_down_shexp.weight",)),
        ("model.layers.3.mlp.experts.down_proj", 3, 5, ("blk.3.ffn_down_exps.weight", "blk.3.ffn_down.5.weight")),
    ],
)
def test_gguf_names_of_a_down_projection_today_first_then_the_legacy_expert_form(tensor, layer, expert, expected):
    assert gguf_tensor_names(tensor, layer, expert) == expected


@pytest.mark.parametrize(
    "class_name, flag, expected", [("Conv1D", False, True), ("Linear", False, False), ("Experts", True, True)]
)
def test_a_module_stores_its_weight_transposed_by_class_or_by_its_flag(class_name, flag, expected):
    module = type(class_name, (), {"is_transposed": flag})()
    assert module_stores_transposed(module) is expected


@given(
    row=st.integers(0, 8191),
    column=st.integers(0, 32767),
    expert=st.integers(0, 255),
    transposed=st.booleans(),
    fused=st.booleans(),
)
def test_held_order_reads_back_the_order_stored_index_wrote(row, column, expert, transposed, fused) -> None:
    index = layout.stored_index(row, column, expert if fused else None, transposed=transposed, fused=fused)
    assert layout.held_order(index, row, column) == ("transposed" if transposed and row != column else "linear")


def test_an_index_holding_neither_order_has_none() -> None:
    assert layout.held_order((3, 8), 3, 7) is None and layout.held_order((2, 7, 4), 3, 7) is None


@pytest.mark.parametrize(
    ("architecture", "index", "expected"),
    [
        ("LlamaForCausalLM", [7, 3], (3, 7)),
        ("GPT2LMHeadModel", [3, 7], (7, 3)),
        ("Qwen3MoeForCausalLM", [5, 7, 3], (5, 3, 7)),
        ("GptOssForCausalLM", [5, 3, 7], (5, 7, 3)),
        ("AriaForConditionalGeneration", [3, 7], None),
        ("SomeRemoteCodeModel", [3, 7], None),
    ],
)
def test_the_index_a_claim_must_write_is_the_architectures_stored_index(architecture, index, expected) -> None:
    """The validator's rule: one order per known class (index_order), the expert the index leads with kept."""
    assert layout.expected_index(3, 7, index, architecture) == expected


def test_only_layout_names_the_transposed_module_class() -> None:
    """Which modules store [column, row] is layout's fact: other modules ask module_stores_transposed (or use
    TRANSPOSED_MODULES) rather than compare a class name themselves."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    naming = [
        str(path.relative_to(root))
        for folder in ("swindex", "builder")
        for path in sorted((root / folder).rglob("*.py"))
        if '"Conv1D"' in path.read_text(encoding="utf-8")
    ]
    assert naming == ["swindex/layout.py"]
