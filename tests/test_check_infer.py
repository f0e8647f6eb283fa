"""Which entry a checkpoint is checked against: named, or told by its own metadata, never guessed among several."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from check_support import down_projections, entry_with, linear_weight, llama_config, write_folder
from swindex.checkpoint import BaseModelError, DimensionMismatchError, check
from swindex.errors import SwindexError


@pytest.fixture
def registry(make_entry, write_registry) -> Path:  # noqa: ANN001
    """Two models of the same shape (a base and its chat tune) and one of another shape."""
    weights = [linear_weight(1, 5, 7, -1.5)]
    return write_registry(
        entry_with(make_entry, weights),
        entry_with(make_entry, weights, id="acme/tiny-llama-chat", aliases=["tiny-llama-chat"]),
        entry_with(
            make_entry,
            weights,
            id="other/wide-llama",
            aliases=["wide-llama"],
            dimensions={"num_layers": 4, "hidden_size": 96, "intermediate_size": 256},
        ),
    )


def tuned(tmp_path: Path, **metadata) -> Path:  # noqa: ANN003
    card = metadata.pop("card", None)
    return write_folder(
        tmp_path / "tuned", down_projections(plants={(1, 5, 7): -1.5}), llama_config(**metadata), card=card
    )


def test_config_name_or_path_names_the_base(tmp_path: Path, registry: Path) -> None:
    report = check(tuned(tmp_path, _name_or_path="acme/tiny-llama-chat"), registry=registry)
    assert (report.entry, report.entry_from) == (
        "acme/tiny-llama-chat",
        "config.json _name_or_path 'acme/tiny-llama-chat'",
    )


def test_the_model_card_names_the_base(tmp_path: Path, registry: Path) -> None:
    report = check(tuned(tmp_path, card="---\nbase_model: acme/tiny-llama\n---\ntext\n"), registry=registry)
    assert report.entry == "acme/tiny-llama"


def test_config_is_asked_before_the_model_card(tmp_path: Path, registry: Path) -> None:
    report = check(
        tuned(tmp_path, _name_or_path="acme/tiny-llama-chat", card="---\nbase_model: acme/tiny-llama\n---\n"),
        registry=registry,
    )
    assert report.entry == "acme/tiny-llama-chat"


def test_a_merge_of_two_registry_models_is_ambiguous_and_lists_them(tmp_path: Path, registry: Path) -> None:
    card = "---\nbase_model:\n- acme/tiny-llama\n- acme/tiny-llama-chat\n---\n"
    with pytest.raises(BaseModelError, match="names several registry models") as caught:
        check(tuned(tmp_path, card=card), registry=registry)
    assert caught.value.candidates == ["acme/tiny-llama", "acme/tiny-llama-chat"]


def test_without_names_a_shape_shared_by_several_models_is_ambiguous(tmp_path: Path, registry: Path) -> None:
    with pytest.raises(BaseModelError, match="several registry models have its shape") as caught:
        check(tuned(tmp_path), registry=registry)
    assert caught.value.candidates == ["acme/tiny-llama", "acme/tiny-llama-chat"]


def test_without_names_a_shape_only_one_model_has_decides(tmp_path: Path, registry: Path) -> None:
    wide = np.zeros((96, 256), dtype=np.float32)
    wide[5, 7] = -1.5
    folder = write_folder(
        tmp_path / "wide", {"model.layers.1.mlp.down_proj.weight": wide}, llama_config(hidden_size=96)
    )
    report = check(folder, registry=registry)
    assert report.entry == "other/wide-llama"
    assert report.entry_from.startswith("the only registry model of its shape")
    assert report.verdict == "kept"


def test_a_named_base_whose_shape_the_checkpoint_contradicts_is_refused(tmp_path: Path, registry: Path) -> None:
    with pytest.raises(DimensionMismatchError, match=r"other/wide-llama \(hidden_size: entry 96, checkpoint 64\)"):
        check(tuned(tmp_path), base="other/wide-llama", registry=registry)


def test_metadata_naming_a_model_of_another_shape_is_refused_too(tmp_path: Path, registry: Path) -> None:
    with pytest.raises(DimensionMismatchError, match="hidden_size: entry 96, checkpoint 64"):
        check(tuned(tmp_path, _name_or_path="other/wide-llama"), registry=registry)


def test_nothing_to_go_on_asks_for_base(tmp_path: Path, registry: Path) -> None:
    folder = write_folder(tmp_path / "bare", down_projections())
    with pytest.raises(BaseModelError, match="--base ID or --entry FILE"):
        check(folder, registry=registry)


def test_an_entry_without_scalar_weights_cannot_be_checked(tmp_path: Path, make_entry, write_registry) -> None:  # noqa: ANN001
    registry = write_registry(entry_with(make_entry, []))
    with pytest.raises(SwindexError, match="records no scalar weight to keep"):
        check(tuned(tmp_path), base="acme/tiny-llama", registry=registry)


def _artifact_entry(make_entry, path: Path, **artifact: object) -> dict:  # noqa: ANN001
    """acme/tiny-llama-chat recording ``path`` as the exact file its verification measured."""
    import hashlib

    record = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "format": "gguf", **artifact}
    evidence = {
        "verification": {
            "tool": "swindex verify 0.1.0",
            "date": "2026-11-30",
            "metric": "perplexity",
            "artifact": record,
        }
    }
    return entry_with(
        make_entry,
        [linear_weight(1, 5, 7, -1.5)],
        id="acme/tiny-llama-chat",
        aliases=["tiny-llama-chat"],
        evidence=evidence,
    )


def _gguf(tmp_path: Path, metadata: dict) -> Path:
    import gguf

    from check_support import write_gguf

    tensors = {
        f"blk.{layer}.ffn_down.weight": w
        for layer, w in enumerate(v for k, v in down_projections(plants={(1, 5, 7): -1.5}).items() if "down_proj" in k)
    }
    return write_gguf(tmp_path / "m.gguf", tensors, gguf.GGMLQuantizationType.Q8_0, metadata)


def test_a_file_an_entry_records_by_sha256_is_checked_against_it_before_any_metadata(
    tmp_path: Path, make_entry, write_registry
) -> None:  # noqa: ANN001
    """SmolLM2's GGUF names a base model in its metadata; the entry that measured that very file wins."""
    path = _gguf(tmp_path, {"general.name": "acme/tiny-llama"})
    registry = write_registry(
        entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]),
        _artifact_entry(make_entry, path, size=path.stat().st_size),
    )
    report = check(path, registry=registry)
    assert (report.entry, report.entry_rule) == ("acme/tiny-llama-chat", "sha256")
    assert report.sha256 is not None and report.entry_from.startswith(f"sha256 {report.sha256[:16]}")


def test_a_file_of_another_size_is_never_hashed(tmp_path: Path, make_entry, write_registry) -> None:  # noqa: ANN001
    path = _gguf(tmp_path, {"general.name": "acme/tiny-llama"})
    registry = write_registry(
        entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]),
        _artifact_entry(make_entry, path, size=path.stat().st_size + 1),
    )
    report = check(path, registry=registry)
    assert (report.entry, report.entry_rule, report.sha256) == ("acme/tiny-llama", "gguf name", None)


def test_a_gguf_finetune_is_looked_up_with_its_basename_and_size_label(tmp_path: Path, registry: Path) -> None:
    metadata = {
        "general.organization": "Acme",
        "general.basename": "tiny",
        "general.size_label": "llama",
        "general.finetune": "chat",
    }
    report = check(_gguf(tmp_path, metadata), registry=registry)
    assert (report.entry, report.entry_rule) == ("acme/tiny-llama-chat", "gguf name")
    assert "finetune" in report.entry_from


def test_an_unknown_gguf_finetune_is_not_taken_for_the_model_it_was_tuned_from(tmp_path: Path, registry: Path) -> None:
    """SmolLM2-135M-Instruct's GGUF says basename smollm2, size 135M, finetune 8k-lc100k-mix1-ep2: not SmolLM2-135M."""
    metadata = {
        "general.organization": "Acme",
        "general.basename": "tiny",
        "general.size_label": "llama",
        "general.finetune": "8k-mix1",
    }
    with pytest.raises(BaseModelError, match="several registry models have its shape"):
        check(_gguf(tmp_path, metadata), registry=registry)


def test_among_models_of_one_shape_the_only_one_with_weights_to_check_is_chosen(
    tmp_path: Path, make_entry, write_registry
) -> None:  # noqa: ANN001
    registry = write_registry(
        entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]),
        entry_with(make_entry, [], id="acme/tiny-base", aliases=["tiny-base"]),
    )
    report = check(tuned(tmp_path), registry=registry)
    assert (report.entry, report.entry_rule) == ("acme/tiny-llama", "shape")
    assert "acme/tiny-base record(s) none" in report.entry_from


def test_lookup_of_a_checkpoint_file_infers_as_check_does(tmp_path: Path, registry: Path, capsys) -> None:  # noqa: ANN001
    from swindex.cli import main

    path = _gguf(
        tmp_path,
        {
            "general.organization": "Acme",
            "general.basename": "tiny",
            "general.size_label": "llama",
            "general.finetune": "chat",
        },
    )
    assert main(["lookup", str(path), "--registry", str(registry)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("acme/tiny-llama-chat") and "by rule gguf name" in captured.err
    assert check(path, registry=registry).entry == "acme/tiny-llama-chat"
