"""Locating FFN down projections by structure and by name, and refusing what cannot be located."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from planted import FAMILIES, build_planted, tiny_config  # noqa: E402

from swindex.detection import detect  # noqa: E402
from swindex.detection.arch import locate  # noqa: E402
from swindex.errors import UnsupportedModelError  # noqa: E402


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_layer_has_a_down_projection_writing_the_hidden_size(family):
    model, _ = build_planted(family, plants=())
    layout = locate(model)
    config = tiny_config(family)
    assert layout.num_layers == config.num_hidden_layers
    assert sorted({s.layer for s in layout.sites}) == list(range(layout.num_layers))
    assert all(s.out_features == config.hidden_size for s in layout.sites)
    assert all(s.tensor in dict(model.named_parameters()) for s in layout.sites)


def test_moe_layers_hold_routed_experts_and_a_shared_expert():
    model, _ = build_planted("qwen2_moe", plants=())
    layout = locate(model)
    kinds = [(s.layer, s.kind, s.num_experts) for s in layout.sites if s.layer == 0]
    assert kinds == [(0, "experts", 4), (0, "linear", None)]
    assert layout.dimensions()["num_experts"] == 4
    assert layout.dimensions()["moe_intermediate_size"] == 32


def test_conv1d_weights_are_indexed_column_first():
    model, _ = build_planted("gpt2", plants=())
    site = locate(model).sites[0]
    assert site.kind == "conv1d"
    assert site.index(row=5, column=7) == (7, 5)
    assert tuple(model.get_parameter(site.tensor).shape) == (site.in_features, site.out_features)


def test_transposed_fused_experts_are_indexed_expert_column_row():
    model, _ = build_planted("mixtral", plants=())
    site = locate(model).sites[0]
    transposed = type(site)(**{**site.__dict__, "transposed": True})
    assert site.index(5, 7, expert=2) == (2, 5, 7)
    assert transposed.index(5, 7, expert=2) == (2, 7, 5)


class _Block(torch.nn.Module):
    def __init__(self, hidden: int, inner: int, names: tuple[str, str]) -> None:
        super().__init__()
        self.expand_name, self.shrink_name = names
        setattr(self, names[0], torch.nn.Linear(hidden, inner))
        setattr(self, names[1], torch.nn.Linear(inner, hidden))

    def forward(self, x):
        return x + getattr(self, self.shrink_name)(torch.relu(getattr(self, self.expand_name)(x)))


class _Toy(torch.nn.Module):
    def __init__(self, names: tuple[str, str], hidden: int = 16) -> None:
        super().__init__()
        self.config = type(
            "Config",
            (),
            {"hidden_size": hidden, "vocab_size": 32, "bos_token_id": 1, "model_type": "toy", "architectures": ["Toy"]},
        )()
        self.embed = torch.nn.Embedding(32, hidden)
        self.blocks = torch.nn.ModuleList(_Block(hidden, 4 * hidden, names) for _ in range(3))

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x)
        return x


def test_unknown_names_are_found_by_structure():
    model = _Toy(("widen", "narrow")).eval()
    layout = locate(model)
    assert [s.tensor for s in layout.sites] == [f"blocks.{i}.narrow.weight" for i in range(3)]
    with torch.no_grad():
        model.blocks[1].widen.weight.zero_()
        model.blocks[1].widen.bias.zero_()
        model.blocks[1].widen.weight[9, 3] = 1.0
        model.embed.weight[1, 3] = 400.0
        model.blocks[1].narrow.weight[2, 9] = 5.0
    found = detect(model, input_ids=[1, 5, 6, 7, 8, 9])
    assert [(w.tensor, w.index) for w in found.candidates] == [("blocks.1.narrow.weight", (2, 9))]


def test_a_model_without_a_down_projection_is_unsupported_and_says_what_is_missing():
    model = _Toy(("widen", "narrow"))
    for block in model.blocks:
        block.narrow = torch.nn.Identity()
    with pytest.raises(
        UnsupportedModelError, match=r"no FFN down projection found in layer 0 \(blocks\.0.*widen 64x16"
    ):
        locate(model)


def test_a_model_without_layers_is_unsupported():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(UnsupportedModelError, match="no list of transformer layers"):
        locate(model)


class _Expert(torch.nn.Module):
    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.up_proj = torch.nn.Linear(hidden, inner, bias=False)
        self.down_proj = torch.nn.Linear(inner, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(torch.relu(self.up_proj(x)))


class _ListMoeBlock(torch.nn.Module):
    """An unfused Mixture-of-Experts layer (one Linear per expert), as older remote code writes them."""

    def __init__(self, hidden: int, experts: int = 3) -> None:
        super().__init__()
        self.router = torch.nn.Linear(hidden, experts, bias=False)
        self.experts = torch.nn.ModuleList(_Expert(hidden, 2 * hidden) for _ in range(experts))

    def forward(self, x):
        choice = self.router(x).argmax(-1)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            mask = choice == e
            if mask.any():
                out[mask] = expert(x[mask])
        return x + out


def test_unfused_expert_lists_report_the_expert_from_the_module_name():
    model = _Toy(("widen", "narrow")).eval()
    model.blocks = torch.nn.ModuleList(_ListMoeBlock(16) for _ in range(3))
    layout = locate(model)
    assert [(s.layer, s.expert) for s in layout.sites] == [(i, e) for i in range(3) for e in range(3)]
    assert layout.dimensions()["num_experts"] == 3
    block = model.blocks[2]
    with torch.no_grad():
        model.embed.weight[1, 3] = 400.0
        block.router.weight[1, 3] = 10.0
        block.experts[1].up_proj.weight[9].zero_()
        block.experts[1].up_proj.weight[9, 3] = 1.0
        block.experts[1].down_proj.weight[2, 9] = 5.0
    found = detect(model, input_ids=[1, 5, 6, 7, 8, 9])
    assert [(w.tensor, w.index, w.expert) for w in found.candidates] == [
        ("blocks.2.experts.1.down_proj.weight", (2, 9), 1)
    ]
    assert found.to_entry(model_id="acme/list-moe")["claims"][0]["expert"] == 1
