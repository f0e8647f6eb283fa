"""swindex._hashing: a file's sha256, computed once per version of the file."""

from __future__ import annotations

import hashlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from swindex._hashing import CHUNK_BYTES, _sha256, file_sha256


@settings(max_examples=25)
@given(st.binary(max_size=3 * 1024))
def test_the_checksum_is_sha256_of_the_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("hash") / "file.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_a_file_longer_than_one_chunk_is_hashed_whole(tmp_path):
    data = os.urandom(CHUNK_BYTES * 2 + 17)
    (tmp_path / "big.bin").write_bytes(data)
    assert file_sha256(tmp_path / "big.bin") == hashlib.sha256(data).hexdigest()


def test_an_unchanged_file_is_read_once(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"weights" * 1000)
    file_sha256(path)
    hits = _sha256.cache_info().hits
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert _sha256.cache_info().hits == hits + 1


def test_a_file_rewritten_in_place_with_the_same_size_is_hashed_again(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"a" * 4096)
    before = file_sha256(path)
    stat = path.stat()
    path.write_bytes(b"b" * 4096)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a coarse clock could repeat mtime
    assert file_sha256(path) == hashlib.sha256(b"b" * 4096).hexdigest() != before


def test_a_link_and_its_target_share_one_checksum(tmp_path):
    target = tmp_path / "blob"
    target.write_bytes(b"x" * 100)
    (tmp_path / "model.gguf").symlink_to(target)
    assert file_sha256(tmp_path / "model.gguf") == file_sha256(target)
