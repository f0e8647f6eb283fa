"""Atomic, validated entry writes: a killed writer never leaves a partial or invalid file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from builder.atomic import entry_path, remove_stale_temporaries, write_entry
from swindex.errors import ValidationError
from swindex.validate import validate_registry
from swindex.yamlio import dump_yaml, load_yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("model_id", "relative"),
    [("acme/tiny", "acme/tiny.yaml"), ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B.yaml"), ("gpt2", "gpt2.yaml")],
)
def test_entry_path_files_the_id_under_the_registry(tmp_path, model_id, relative):
    assert entry_path(tmp_path, model_id) == tmp_path / relative


def test_write_entry_writes_what_load_yaml_reads_back(tmp_path, make_entry):
    entry = make_entry()
    path = entry_path(tmp_path, entry["id"])
    assert write_entry(path, entry, header="# a header\n")
    assert load_yaml(path) == entry
    assert path.read_text(encoding="utf-8").startswith("# a header\n")
    assert validate_registry(tmp_path) == []


def test_unchanged_entry_is_not_rewritten(tmp_path, make_entry):
    entry = make_entry()
    path = entry_path(tmp_path, entry["id"])
    write_entry(path, entry)
    os.utime(path, ns=(1, 1))
    assert write_entry(path, entry) is False
    assert path.stat().st_mtime_ns == 1


def test_invalid_entry_is_refused_and_the_old_file_kept(tmp_path, make_entry):
    entry = make_entry()
    path = entry_path(tmp_path, entry["id"])
    write_entry(path, entry)
    before = path.read_bytes()
    broken = make_entry()
    broken["claims"][0]["row"] = -1
    with pytest.raises(ValidationError, match="row"):
        write_entry(path, broken)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path.insert(0, {repo!r})
    import builder.atomic as atomic
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(os, {target!r}, die)
    atomic.write_entry({path!r}, json.loads({entry!r}))
    """
)


@pytest.mark.parametrize("target", ["fsync", "replace"])
def test_writer_killed_mid_write_leaves_the_old_file_intact(tmp_path, make_entry, target):
    old = make_entry()
    path = entry_path(tmp_path, old["id"])
    write_entry(path, old)
    before = path.read_bytes()
    new = make_entry(notes="a new version that never lands")
    script = KILLER.format(repo=str(REPO), target=target, path=str(path), entry=json.dumps(new))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert path.read_bytes() == before
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert leftovers and all(p.name.startswith(".") for p in leftovers)
    assert validate_registry(tmp_path) == []
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(leftovers)
    assert list(path.parent.iterdir()) == [path]


def test_stale_cleanup_leaves_other_hidden_files_alone(tmp_path):
    keep = tmp_path / "acme" / ".keep"
    keep.parent.mkdir()
    keep.write_text("")
    (tmp_path / "acme" / "x.yaml").write_text(dump_yaml({"a": 1}))
    assert remove_stale_temporaries(tmp_path) == []
    assert keep.exists()
