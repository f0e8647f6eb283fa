"""Damaged and hostile checkpoints: each gives one clear error naming the file and the lie, and no memory blow-up."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from check_support import down_projections, entry_with, linear_weight, llama_config, write_folder, write_gguf
from swindex import layout
from swindex.checkpoint import CheckpointError, check

TERABYTE = 1 << 40
MEMORY_CEILING = 64 << 20  # far below anything a header's claim could make check allocate


@pytest.fixture
def entry(make_entry) -> dict:  # noqa: ANN001
    return entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)])


def safetensors_bytes(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def checked_within_memory(path: Path, entry: dict, match: str) -> None:
    """check(path) raises CheckpointError matching ``match`` and names the file, allocating little on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match) as caught:
            check(path, entry=entry)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(caught.value)
    assert peak < MEMORY_CEILING


def test_a_file_shorter_than_a_header_length(tmp_path: Path, entry: dict) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00")
    checked_within_memory(tmp_path / "model.safetensors", entry, "too short for a safetensors header")


def test_a_header_claiming_a_terabyte(tmp_path: Path, entry: dict) -> None:
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", TERABYTE) + b"{}")
    checked_within_memory(tmp_path / "model.safetensors", entry, "header claims 1,099,511,627,776 bytes")


def test_a_truncated_header(tmp_path: Path, entry: dict) -> None:
    whole = safetensors_bytes({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    (tmp_path / "model.safetensors").write_bytes(whole[:20])
    checked_within_memory(tmp_path / "model.safetensors", entry, "it is truncated")


def test_a_header_that_is_not_json(tmp_path: Path, entry: dict) -> None:
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 6) + b"\xff{oops")
    checked_within_memory(tmp_path / "model.safetensors", entry, "header is not UTF-8")


def test_data_offsets_past_the_end_of_the_file(tmp_path: Path, entry: dict) -> None:
    header = {
        "model.layers.1.mlp.down_proj.weight": {
            "dtype": "F32",
            "shape": [1 << 20, 1 << 20],
            "data_offsets": [0, 4 << 40],
        }
    }
    (tmp_path / "model.safetensors").write_bytes(safetensors_bytes(header, b"\0" * 64))
    checked_within_memory(
        tmp_path / "model.safetensors", entry, r"'model\.layers\.1\.mlp\.down_proj\.weight'.*past the end of the file"
    )


def test_a_size_that_disagrees_with_the_shape(tmp_path: Path, entry: dict) -> None:
    header = {"model.layers.1.mlp.down_proj.weight": {"dtype": "F32", "shape": [64, 256], "data_offsets": [0, 64]}}
    (tmp_path / "model.safetensors").write_bytes(safetensors_bytes(header, b"\0" * 64))
    checked_within_memory(tmp_path / "model.safetensors", entry, "needs 65,536")


def test_a_file_cut_short_after_a_true_header(tmp_path: Path, entry: dict) -> None:
    folder = write_folder(tmp_path / "cut", down_projections(plants={(1, 5, 7): -1.5}), llama_config())
    whole = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(whole[: len(whole) // 2])
    checked_within_memory(folder / "model.safetensors", entry, "past the end of the file")


def test_a_shard_index_pointing_outside_its_folder(tmp_path: Path, entry: dict) -> None:
    folder = write_folder(tmp_path / "m", down_projections(), llama_config(), shards=2)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.layers.1.mlp.down_proj.weight"] = "../../etc/passwd.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(
        CheckpointError,
        match=r"'\.\./\.\./etc/passwd\.safetensors', which is not a \.safetensors file beside the index",
    ):
        check(folder, entry=entry)


def gguf_file(tmp_path: Path) -> Path:
    tensors = {
        layout.gguf_tensor_name(layer): array
        for layer, array in enumerate(a for n, a in down_projections().items() if "down" in n)
    }
    import gguf

    return write_gguf(tmp_path / "model.gguf", tensors, gguf.GGMLQuantizationType.Q8_0, {"general.name": "tiny"})


def test_a_gguf_cut_inside_its_header(tmp_path: Path, entry: dict) -> None:
    path = gguf_file(tmp_path)
    path.write_bytes(path.read_bytes()[:300])
    checked_within_memory(path, entry, "GGUF header.*past the end of the file")


def test_a_gguf_claiming_more_tensors_than_it_can_hold(tmp_path: Path, entry: dict) -> None:
    path = gguf_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[8:16] = struct.pack("<Q", 1 << 60)
    path.write_bytes(bytes(data))
    checked_within_memory(path, entry, "claims 1,152,921,504,606,846,976 tensors")


def test_a_gguf_string_claiming_a_terabyte(tmp_path: Path, entry: dict) -> None:
    path = gguf_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[24:32] = struct.pack("<Q", TERABYTE)  # the length of the first metadata key
    path.write_bytes(bytes(data))
    checked_within_memory(path, entry, "needs 1,099,511,627,776 bytes")


def test_a_gguf_array_claiming_billions_of_strings(tmp_path: Path, entry: dict) -> None:
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    key = b"tokenizer.ggml.tokens"
    header += struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 8, 1 << 33) + struct.pack("<Q", 3) + b"abc"
    path = tmp_path / "vocab.gguf"
    path.write_bytes(header + b"\0" * 64)
    checked_within_memory(path, entry, "more than fit in the rest of the file")


def test_a_gguf_tensor_past_the_end_of_the_file(tmp_path: Path, entry: dict) -> None:
    path = gguf_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4096])
    checked_within_memory(path, entry, r"GGUF tensor 'blk\.\d\.ffn_down\.weight' claims .* past the end of the file")


def test_the_command_says_it_in_one_line_and_exits_2(tmp_path: Path, entry: dict) -> None:
    from swindex.yamlio import dump_yaml

    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", TERABYTE))
    (tmp_path / "entry.yaml").write_text(dump_yaml(entry), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "swindex",
            "check",
            str(tmp_path / "model.safetensors"),
            "--entry",
            str(tmp_path / "entry.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"swindex check: error: {tmp_path / 'model.safetensors'}: header claims")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_path_that_does_not_exist_is_not_mistaken_for_a_repository(tmp_path: Path, entry: dict) -> None:
    with pytest.raises(CheckpointError, match="no such file or folder"):
        check(tmp_path / "missing" / "model.gguf", entry=entry)
