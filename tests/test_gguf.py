"""GGUF files: loaded through transformers' GGUF support, recorded as the artifact measured,
named as llama.cpp names them.

The files are written here with gguf.GGUFWriter from a planted tiny Llama, the way llama.cpp's converter writes
them (tensor names from gguf's own map, query/key rows permuted for its rotary layout), so the round trip checks
that what is measured is the model that was written.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

import torch  # noqa: E402
from planted import Plant, build_planted, probe_ids  # noqa: E402

from swindex.cli import main  # noqa: E402
from swindex.errors import DetectionError  # noqa: E402
from swindex.loading import gguf_header, gguf_path, load_model  # noqa: E402
from swindex.records import with_artifact  # noqa: E402
from swindex.validate import validate_entry_dict  # noqa: E402
from swindex.yamlio import load_yaml  # noqa: E402

PLANT = Plant(layer=1, row=5, column=7)


def _permute(weights, n_head: int, n_head_kv: int):
    """llama.cpp's converter's reordering of query/key rows (transformers' GGUF loader undoes it)."""
    if n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf(
    model, path: Path, quantization: str = "F32", *, file_type: bool = True, tokens: list[str] | None = None
) -> Path:
    """Write a transformers Llama as a GGUF file: every 2-D weight in `quantization` (F32 or Q8_0), norms in F32;
    ``general.file_type`` declared unless ``file_type`` is false, and a tokenizer vocabulary when ``tokens`` are
    given."""
    import numpy as np

    config = model.config
    qtype = gguf.GGMLQuantizationType[quantization]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("planted tiny llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(config.vocab_size)
    writer.add_bos_token_id(config.bos_token_id)
    if file_type:
        writer.add_file_type(
            gguf.LlamaFileType.ALL_F32 if quantization == "F32" else gguf.LlamaFileType[f"MOSTLY_{quantization}"]
        )
    if tokens is not None:
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        base, _, suffix = name.rpartition(".")
        array = tensor.detach().float().numpy()
        target = names.get_name(base)
        if target.endswith("attn_q"):
            array = _permute(array, config.num_attention_heads, config.num_attention_heads)
        elif target.endswith("attn_k"):
            array = _permute(array, config.num_attention_heads, config.num_key_value_heads)
        array = np.ascontiguousarray(array)
        if array.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
            writer.add_tensor(f"{target}.{suffix}", gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(f"{target}.{suffix}", array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def planted():
    return build_planted("llama", plants=(PLANT,))


@pytest.fixture(scope="module")
def gguf_file(planted, tmp_path_factory):
    return write_gguf(planted[0], tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf")


@pytest.fixture(scope="module")
def q8_file(planted, tmp_path_factory):
    return write_gguf(planted[0], tmp_path_factory.mktemp("gguf-q8") / "tiny-llama.Q8_0.gguf", "Q8_0")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_a_gguf_file_loads_as_the_model_it_was_written_from(planted, gguf_file):
    model = planted[0]
    loaded = load_model(str(gguf_file), dtype="float32", device="cpu")
    weights = loaded.model.state_dict()
    assert all(torch.equal(value, weights[name]) for name, value in model.state_dict().items())
    ids = probe_ids(model.config)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, model(ids).logits)


def test_the_artifact_names_the_file_its_sha256_and_its_quantization(gguf_file):
    loaded = load_model(str(gguf_file), dtype="float32", device="cpu")
    assert loaded.artifact.to_dict() == {
        "file": "tiny-llama.F32.gguf",
        "sha256": hashlib.sha256(gguf_file.read_bytes()).hexdigest(),
        "format": "gguf",
        "quantization": "F32",
    }
    assert loaded.model_id is None and loaded.revision is None, "a GGUF copy is not the checkpoint its id would name"


def test_a_quantized_file_is_dequantized_and_its_type_recorded(planted, q8_file):
    loaded = load_model(str(q8_file), dtype="float32", device="cpu")
    assert loaded.artifact.quantization == "Q8_0"
    original = planted[0].model.layers[1].mlp.down_proj.weight
    dequantized = loaded.model.model.layers[1].mlp.down_proj.weight
    assert not torch.equal(original, dequantized), "Q8_0 is lossy: the weights were really quantized"
    torch.testing.assert_close(dequantized, original, atol=0.05, rtol=0.01)


@pytest.mark.parametrize("quantization", ["F32", "Q8_0"])
def test_the_header_names_the_quantization_it_declares(planted, tmp_path, quantization):
    path = write_gguf(planted[0], tmp_path / f"tiny.{quantization}.gguf", quantization)
    assert gguf_header(path).quantization == quantization


def test_a_header_that_declares_no_file_type_is_named_by_its_commonest_matrix_type(planted, tmp_path):
    path = write_gguf(planted[0], tmp_path / "tiny.gguf", "Q8_0", file_type=False)
    header = gguf_header(path)
    assert "general.file_type" not in header.metadata and header.quantization == "Q8_0"


@pytest.mark.parametrize("tokens, carried", [(None, False), ([f"t{i}" for i in range(300)], True)])
def test_the_header_says_whether_a_tokenizer_is_carried(planted, tmp_path, tokens, carried):
    """A vocabulary is a long array the reader steps over without reading; its key still counts."""
    header = gguf_header(write_gguf(planted[0], tmp_path / "tiny.gguf", tokens=tokens))
    assert header.has_tokenizer is carried and "tokenizer.ggml.tokens" not in header.metadata


def test_a_folder_holding_one_gguf_file_loads_it(gguf_file, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(gguf_file, folder / gguf_file.name)
    assert gguf_path(folder) == folder / gguf_file.name
    assert load_model(str(folder), dtype="float32", device="cpu").artifact.file == gguf_file.name


def test_a_folder_holding_two_gguf_files_is_an_error_naming_both(gguf_file, tmp_path):
    for name in ("a.Q4_1.gguf", "b.Q8_0.gguf"):
        shutil.copy(gguf_file, tmp_path / name)
    with pytest.raises(DetectionError, match=r"2 \.gguf files \(a\.Q4_1\.gguf, b\.Q8_0\.gguf\); pass the one"):
        load_model(str(tmp_path))


def test_a_folder_with_config_json_is_a_transformers_checkpoint_whatever_else_it_holds(gguf_file, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    shutil.copy(gguf_file, tmp_path / gguf_file.name)
    assert gguf_path(tmp_path) is None


def test_a_file_that_is_not_gguf_is_refused_with_its_name(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    with pytest.raises(DetectionError, match="broken.gguf"):
        load_model(str(broken))


def test_a_header_claiming_more_than_the_file_holds_is_refused_before_anything_is_allocated(tmp_path):
    """Loading reads headers with check's bounded reader: a hostile count is a one-line error, not a huge allocation."""
    import struct

    hostile = tmp_path / "hostile.gguf"
    hostile.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 10**12, 0) + bytes(64))
    with pytest.raises(DetectionError, match=r"hostile\.gguf: GGUF header claims 1,000,000,000,000 tensors") as caught:
        load_model(str(hostile), dtype="float32", device="cpu")
    assert "\n" not in str(caught.value)


def test_a_revision_for_a_gguf_file_must_be_a_full_commit_sha(gguf_file):
    with pytest.raises(DetectionError, match="40-character"):
        load_model(str(gguf_file), revision="main")
    loaded = load_model(str(gguf_file), revision="a" * 40, dtype="float32", device="cpu")
    assert loaded.artifact.revision == "a" * 40 and loaded.revision is None


def test_a_gguf_file_in_a_hub_cache_snapshot_names_its_repository_and_commit(gguf_file, tmp_path):
    sha = "ab810cf68114990406fdf996510dd3d3c6adbdf5"
    snapshot = tmp_path / "models--QuantFactory--Tiny-GGUF" / "snapshots" / sha
    snapshot.mkdir(parents=True)
    shutil.copy(gguf_file, snapshot / gguf_file.name)
    artifact = load_model(str(snapshot / gguf_file.name), dtype="float32", device="cpu").artifact
    assert (artifact.repository, artifact.revision) == ("QuantFactory/Tiny-GGUF", sha)


def test_the_artifact_goes_into_the_runs_present_and_validates(gguf_file, make_entry):
    artifact = load_model(str(gguf_file), dtype="float32", device="cpu").artifact
    entry = make_entry(
        evidence={"detection": {"tool": "swindex 0.1.0", "date": "2026-11-28", "dtype": "float32", "layers": []}}
    )
    recorded = with_artifact(entry, artifact)
    assert recorded["evidence"]["detection"]["artifact"]["sha256"] == artifact.sha256
    assert "verification" not in recorded["evidence"]
    assert "artifact" not in entry["evidence"]["detection"], "the entry given is not changed"
    assert validate_entry_dict(recorded) == []


def test_a_malformed_artifact_fails_validation(make_entry):
    entry = make_entry(
        evidence={"detection": {"tool": "swindex 0.1.0", "date": "2026-11-28", "dtype": "float32", "layers": []}}
    )
    entry["evidence"]["detection"]["artifact"] = {"file": "dir/model.gguf", "sha256": "abc", "format": "gguf"}
    fields = {p.field for p in validate_entry_dict(entry)}
    assert any("artifact.file" in f for f in fields) and any("artifact.sha256" in f for f in fields)


def test_detect_on_a_gguf_file_records_it_and_names_the_weight_as_llama_cpp_does(q8_file, tmp_path, capsys):
    out = tmp_path / "entry.yaml"
    assert main(["detect", str(q8_file), "--id", "acme/tiny-llama", "--output", str(out), "--dtype", "float32"]) == 0
    err = capsys.readouterr().err
    assert "blk.1.ffn_down.weight[7, 5]" in err, "llama.cpp's index order: column, row"
    entry = load_yaml(out)
    assert [(c["layer"], c["row"], c["column"]) for c in entry["claims"]] == [(PLANT.layer, PLANT.row, PLANT.column)]
    artifact = entry["evidence"]["detection"]["artifact"]
    assert artifact == {
        "file": q8_file.name,
        "sha256": hashlib.sha256(q8_file.read_bytes()).hexdigest(),
        "format": "gguf",
        "quantization": "Q8_0",
    }


def test_the_builder_records_where_a_listed_gguf_file_comes_from(gguf_file, tmp_path):
    from builder import backend
    from builder.modellist import load_model_list

    listing = tmp_path / "models.yaml"
    sha = "b" * 40
    listing.write_text(
        f"models:\n  - id: acme/tiny-llama\n    path: {gguf_file}\n    dtype: float32\n    device: cpu\n"
        f"    artifact: {{repository: acme/tiny-llama-GGUF, revision: {sha}}}\n"
    )
    (spec,) = load_model_list(listing)
    assert backend.resolve_revision(spec) is None, "the base model's commit is not the GGUF repository's"
    session = backend.load(spec, None)
    entry = backend.detect(session, spec)
    artifact = entry["evidence"]["detection"]["artifact"]
    assert (artifact["repository"], artifact["revision"], artifact["file"]) == (
        "acme/tiny-llama-GGUF",
        sha,
        gguf_file.name,
    )
    assert entry["id"] == "acme/tiny-llama" and entry["revision"] is None


def test_verify_of_a_gguf_file_needs_the_id_of_the_model_it_quantizes(gguf_file, capsys):
    assert main(["verify", str(gguf_file)]) == 1
    assert "--id ORG/NAME" in capsys.readouterr().err


def test_verify_of_a_gguf_file_measures_the_entry_named_by_id_and_records_the_file(q8_file, tmp_path, capsys):
    registry = tmp_path / "registry"
    assert (
        main(
            [
                "detect",
                str(q8_file),
                "--id",
                "acme/tiny-llama",
                "--output",
                str(registry / "acme" / "tiny-llama.yaml"),
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    out = tmp_path / "verified.yaml"
    args = [
        "verify",
        str(q8_file),
        "--id",
        "acme/tiny-llama",
        "--registry",
        str(registry),
        "--output",
        str(out),
        "--sequences",
        "2",
        "--length",
        "16",
    ]
    assert main([*args, "--dtype", "float32"]) == 0
    assert "blk.1.ffn_down.weight[7, 5]" in capsys.readouterr().err
    run = load_yaml(out)["evidence"]["verification"]
    assert run["artifact"]["sha256"] == hashlib.sha256(q8_file.read_bytes()).hexdigest()
