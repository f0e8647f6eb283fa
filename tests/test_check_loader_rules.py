"""check reads what a loader reads: each wrong "kept" of issue 18's section 2 now fails closed.

Every checkpoint below once made `swindex check` say *kept* while transformers (or llama.cpp) would load
other bytes, or refuse the file. Each now gives the loader's answer, or a one-line error naming the file.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from check_support import down_projections, entry_with, linear_weight, llama_config, write_folder, write_gguf
from swindex.checkpoint import CheckpointError, check
from swindex.errors import SwindexError, ValidationError
from swindex.validate import validate_entry_dict

CLAIM = linear_weight(1, 5, 7, -1.5)
NAME = "model.layers.1.mlp.down_proj.weight"


@pytest.fixture
def entry(make_entry) -> dict:  # noqa: ANN001
    return entry_with(make_entry, [CLAIM])


def test_a_stray_file_beside_model_safetensors_is_ignored_and_named(tmp_path: Path, entry: dict) -> None:
    """transformers loads model.safetensors only; a backup holding the originals must not vouch for it."""
    from safetensors.numpy import save_file

    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): 0.0}), llama_config())
    save_file(down_projections(plants={(1, 5, 7): -1.5}), str(folder / "0-backup.safetensors"))
    report = check(folder, entry=entry)
    assert (report.verdict, report.weights[0].file) == ("lost", str(folder / "model.safetensors"))
    assert any("0-backup.safetensors" in note for note in report.notes)


def test_model_safetensors_wins_over_an_index_as_transformers_decides(tmp_path: Path, entry: dict) -> None:
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5}), llama_config(), shards=2)
    from safetensors.numpy import save_file

    save_file(down_projections(plants={(1, 5, 7): 0.0}), str(folder / "model.safetensors"))
    assert check(folder, entry=entry).verdict == "lost"


def test_a_folder_of_stray_files_only_is_refused(tmp_path: Path, entry: dict) -> None:
    from safetensors.numpy import save_file

    (tmp_path / "m").mkdir()
    save_file(down_projections(plants={(1, 5, 7): -1.5}), str(tmp_path / "m" / "0-backup.safetensors"))
    with pytest.raises(CheckpointError, match="neither model.safetensors nor model.safetensors.index.json"):
        check(tmp_path / "m", entry=entry)


def test_a_tensor_in_two_shards_is_an_error_naming_both(tmp_path: Path, entry: dict) -> None:
    """The index points at the untouched copy; transformers loads every shard and the later one wins."""
    from safetensors.numpy import save_file

    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5}), llama_config(), shards=2)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    holder = index["weight_map"][NAME]
    other = next(f for f in set(index["weight_map"].values()) if f != holder)
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / other))
    tensors[NAME] = np.zeros_like(down_projections()[NAME])
    save_file(tensors, str(folder / other))
    with pytest.raises(
        CheckpointError,
        match=rf"{NAME} is stored twice, in .*({holder}|{other}).* and in .*({holder}|{other})",
    ):
        check(folder, entry=entry)


@pytest.mark.parametrize("stored_as", ["weight", "mlp.down_proj.weight", "extra.model.layers.1.mlp.down_proj.weight"])
def test_a_name_that_only_ends_like_the_tensor_is_not_it(tmp_path: Path, entry: dict, stored_as: str) -> None:
    """transformers would initialise the real key at random; the suffix-named tensor is not the model's."""
    weight = down_projections(plants={(1, 5, 7): -1.5})[NAME]
    folder = write_folder(tmp_path / "m", {stored_as: weight}, llama_config())
    with pytest.raises(CheckpointError, match=f"has no tensor {NAME}"):
        check(folder, entry=entry)


@pytest.mark.parametrize("prefix", ["", "model.", "language_model.model.", "model.language_model."])
def test_the_documented_prefixes_still_match(tmp_path: Path, entry: dict, prefix: str) -> None:
    weight = down_projections(plants={(1, 5, 7): -1.5})[NAME]
    folder = write_folder(tmp_path / "m", {f"{prefix}layers.1.mlp.down_proj.weight": weight}, llama_config())
    assert check(folder, entry=entry).verdict == "kept"


def test_the_same_tensor_under_two_prefixes_is_refused(tmp_path: Path, entry: dict) -> None:
    weight = down_projections(plants={(1, 5, 7): -1.5})[NAME]
    folder = write_folder(
        tmp_path / "m", {NAME: weight, "layers.1.mlp.down_proj.weight": np.zeros_like(weight)}, llama_config()
    )
    with pytest.raises(CheckpointError, match="under several names"):
        check(folder, entry=entry)


def _raw(path: Path, header_text: bytes, data: bytes) -> Path:
    path.write_bytes(struct.pack("<Q", len(header_text)) + header_text + data)
    return path


def test_overlapping_data_offsets_are_refused(tmp_path: Path, entry: dict) -> None:
    """Two names over one set of bytes: the safetensors library refuses the file, so check does too."""
    weight = down_projections(plants={(1, 5, 7): -1.5})[NAME]
    size = weight.nbytes
    header = {
        NAME: {"dtype": "F32", "shape": list(weight.shape), "data_offsets": [0, size]},
        "model.layers.0.mlp.down_proj.weight": {"dtype": "F32", "shape": list(weight.shape), "data_offsets": [0, size]},
    }
    path = _raw(tmp_path / "model.safetensors", json.dumps(header).encode(), weight.tobytes())
    with pytest.raises(CheckpointError, match="overlaps the tensor before it"):
        check(path, entry=entry)


def test_duplicate_header_keys_are_refused(tmp_path: Path, entry: dict) -> None:
    """JSON keeps the last of two equal keys; the safetensors library refuses the header."""
    weight = down_projections(plants={(1, 5, 7): -1.5})[NAME]
    one = json.dumps({"dtype": "F32", "shape": list(weight.shape), "data_offsets": [0, weight.nbytes]})
    text = f'{{"{NAME}": {one}, "{NAME}": {one}}}'.encode()
    path = _raw(tmp_path / "model.safetensors", text, weight.tobytes())
    with pytest.raises(CheckpointError, match=f"duplicate key '{NAME}'"):
        check(path, entry=entry)


def test_a_gap_after_the_last_tensor_is_refused(tmp_path: Path, entry: dict) -> None:
    weight = down_projections(plants={(1, 5, 7): -1.5})[NAME]
    header = {NAME: {"dtype": "F32", "shape": list(weight.shape), "data_offsets": [0, weight.nbytes]}}
    path = _raw(tmp_path / "model.safetensors", json.dumps(header).encode(), weight.tobytes() + b"\0" * 64)
    with pytest.raises(CheckpointError, match="which the safetensors library refuses"):
        check(path, entry=entry)


@pytest.mark.parametrize("shift", [1, 32])
def test_a_gguf_tensor_off_its_place_is_refused(tmp_path: Path, entry: dict, shift: int) -> None:
    """llama.cpp requires each tensor where the table puts it (aligned, after the last): else it refuses the file."""
    import gguf

    planted = down_projections(plants={(1, 5, 7): -1.5})
    tensors = {
        f"blk.{layer}.ffn_down.weight": planted[f"model.layers.{layer}.mlp.down_proj.weight"] for layer in (0, 1)
    }
    path = write_gguf(tmp_path / "m.gguf", tensors, gguf.GGMLQuantizationType.F32)
    data = bytearray(path.read_bytes())
    name = b"blk.1.ffn_down.weight"
    at = data.index(name) + len(name) + 4 + 2 * 8 + 4  # after the name: n_dims, ne0, ne1, type, then the offset
    (offset,) = struct.unpack_from("<Q", data, at)
    struct.pack_into("<Q", data, at, offset - shift)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="misaligned or overlapping"):
        check(path, entry=entry)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_recorded_value_is_invalid(entry: dict, value: float) -> None:
    """NaN made every check *kept*, Infinity made an untouched checkpoint *lost*: such an entry is invalid."""
    entry["claims"][0]["value"] = value
    problems = validate_entry_dict(entry, "dump entries[0]")
    assert any("not a finite number" in str(p) and "claims[0].value" in str(p) for p in problems)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_check_refuses_an_entry_with_a_non_finite_value(tmp_path: Path, entry: dict, value: float) -> None:
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5}), llama_config())
    entry["claims"][0]["value"] = value
    with pytest.raises(ValidationError, match="not a finite number"):
        check(folder, entry=entry)


def test_update_refuses_a_dump_with_a_nan_value(entry: dict) -> None:
    from swindex.update import checked_entries

    entry["claims"][0]["value"] = math.nan
    document = {"schema_version": entry["schema_version"], "entries": [{"path": f"{entry['id']}.yaml", "entry": entry}]}
    with pytest.raises(SwindexError, match="not a finite number"):
        checked_entries(json.loads(json.dumps(document)), "dump")


def test_metadata_that_is_not_a_map_of_strings_is_refused(tmp_path: Path, entry: dict) -> None:
    weight = down_projections(plants={(1, 5, 7): -1.5})[NAME]
    header = {
        "__metadata__": {"format": 1},
        NAME: {"dtype": "F32", "shape": list(weight.shape), "data_offsets": [0, weight.nbytes]},
    }
    path = _raw(tmp_path / "model.safetensors", json.dumps(header).encode(), weight.tobytes())
    with pytest.raises(CheckpointError, match="__metadata__ is not a map of strings"):
        check(path, entry=entry)
