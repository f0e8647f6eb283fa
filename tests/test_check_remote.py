"""`swindex check ORG/NAME[@REVISION]`: a repository read with range requests, against a local server.

The server answers the requests huggingface_hub makes (``api/models/ORG/NAME/revision/REV`` and
``ORG/NAME/resolve/REV/FILE``, honouring ``Range``) and counts every byte it sends.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from check_support import down_projections, entry_with, linear_weight, llama_config, write_folder
from swindex.checkpoint import CheckpointError, check

pytest.importorskip("huggingface_hub")
SHA = "0123456789abcdef0123456789abcdef01234567"
MEGABYTE = 1 << 20


@dataclass
class Hub:
    """Repositories (id -> folder) served at ``url``, and what was asked and sent."""

    repos: dict[str, Path]
    url: str = ""
    sent: int = 0
    requests: list[str] = field(default_factory=list)
    honour_range: bool = True
    lfs: bool = False  # report each .safetensors file's sha256 and size, as the Hub does for LFS files


def _lfs(path: Path, hub: Hub) -> dict:
    if not hub.lfs or path.suffix != ".safetensors":
        return {}
    import hashlib

    return {
        "lfs": {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "size": path.stat().st_size,
            "pointerSize": 134,
        }
    }


def serve(hub: Hub) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), "X-Repo-Commit": SHA, **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                hub.sent += len(body)  # counted before it leaves, so a client that has it sees it counted
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            hub.requests.append(f"{self.command} {self.path} {self.headers.get('Range', '')}".strip())
            path = self.path.split("?", 1)[0]
            if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path):
                folder = hub.repos.get(match[1])
                if folder is None:
                    return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                if match[2] not in (None, "main", SHA):
                    return self._send(404, b'{"error": "Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"})
                siblings = [{"rfilename": p.name, **_lfs(p, hub)} for p in sorted(folder.iterdir())]
                return self._send(
                    200,
                    json.dumps({"id": match[1], "sha": SHA, "siblings": siblings}).encode(),
                    {"Content-Type": "application/json"},
                )
            if match := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                folder = hub.repos.get(match[1])
                file = folder / match[3] if folder is not None else None
                if file is None or match[2] != SHA or not file.is_file():
                    return self._send(404, b"not found", {"X-Error-Code": "EntryNotFound"})
                return self._file(file)
            self._send(404, b"unknown endpoint", {})

        def _file(self, file: Path) -> None:
            size = file.stat().st_size
            wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            if not wanted or not hub.honour_range:
                return self._send(200, file.read_bytes(), {"Accept-Ranges": "none"})
            start, end = int(wanted[1]), min(int(wanted[2]), size - 1)
            if start >= size:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            with file.open("rb") as handle:
                handle.seek(start)
                body = handle.read(end - start + 1)
            self._send(206, body, {"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"})

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests run offline; this server is local
    state = Hub(repos={})
    server = serve(state)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Down projections with a planted weight, plus a 52 MB embedding, in three shards:
    a checkpoint too big to fetch."""
    tensors = down_projections(plants={(1, 5, 7): -1.5})
    tensors["model.embed_tokens.weight"] = np.zeros((12_800, 1024), dtype=np.float32)
    return write_folder(tmp_path_factory.mktemp("remote") / "big", tensors, llama_config(), shards=3)


def test_a_remote_check_reads_under_a_megabyte_of_a_large_checkpoint(
    big_checkpoint: Path, hub: Hub, make_entry
) -> None:  # noqa: ANN001
    folder = big_checkpoint
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total > 50 * MEGABYTE
    hub.repos["acme/big-tune"] = folder
    report = check("acme/big-tune", entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]), endpoint=hub.url)
    (weight,) = report.weights
    assert (weight.verdict, weight.value) == ("kept", -1.5)
    assert report.checkpoint == f"acme/big-tune@{SHA}"
    assert 0 < hub.sent < MEGABYTE
    assert report.bytes_read <= hub.sent


def test_every_shard_header_is_read_as_a_loader_reads_every_shard(big_checkpoint: Path, hub: Hub, make_entry) -> None:  # noqa: ANN001
    """transformers loads every file the index names (a later copy of a tensor wins),
    so each header is read for duplicates."""
    folder = big_checkpoint
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    hub.repos["acme/big-tune"] = folder
    report = check("acme/big-tune@main", entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]), endpoint=hub.url)
    opened = {re.search(r"resolve/\w+/(\S+)", r)[1] for r in hub.requests if "resolve" in r}
    assert opened == {"config.json", "model.safetensors.index.json", *weight_map.values()}
    assert all("Range: bytes=" not in r or r.endswith(tuple("0123456789")) for r in hub.requests)
    assert report.bytes_read < MEGABYTE


def test_a_remote_fine_tune_that_lost_its_weight_says_so(tmp_path: Path, hub: Hub, make_entry) -> None:  # noqa: ANN001
    hub.repos["acme/broken-tune"] = write_folder(
        tmp_path / "broken", down_projections(plants={(1, 5, 7): 0.0}), llama_config()
    )
    report = check("acme/broken-tune", entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]), endpoint=hub.url)
    assert (report.verdict, report.exit_status) == ("lost", 1)


def test_the_base_model_is_read_from_the_remote_model_card(
    tmp_path: Path, hub: Hub, make_entry, write_registry
) -> None:  # noqa: ANN001
    registry = write_registry(entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]))
    card = "---\nbase_model: acme/tiny-llama\nlicense: mit\n---\n# A fine-tune\n"
    hub.repos["someone/tiny-llama-chat"] = write_folder(
        tmp_path / "chat", down_projections(plants={(1, 5, 7): -1.49}), llama_config(), card=card
    )
    report = check("someone/tiny-llama-chat", registry=registry, endpoint=hub.url)
    assert report.entry == "acme/tiny-llama" and report.entry_from == "the model card's base_model 'acme/tiny-llama'"
    assert report.verdict == "kept"


def test_a_server_that_ignores_ranges_is_refused_rather_than_downloaded(
    big_checkpoint: Path, hub: Hub, make_entry
) -> None:  # noqa: ANN001
    hub.repos["acme/big-tune"] = big_checkpoint
    hub.honour_range = False
    with pytest.raises(CheckpointError, match="does not serve ranges"):
        check("acme/big-tune", entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]), endpoint=hub.url)


@pytest.mark.parametrize(
    ("spec", "message"), [("acme/nothing-here", "no such model repository"), ("acme/big-tune@v9", "no such revision")]
)
def test_a_missing_repository_or_revision_is_named(
    tmp_path: Path, hub: Hub, make_entry, spec: str, message: str
) -> None:  # noqa: ANN001
    hub.repos["acme/big-tune"] = write_folder(tmp_path / "m", down_projections(), llama_config())
    with pytest.raises(CheckpointError, match=f"^{re.escape(spec)}: {message}"):
        check(spec, entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]), endpoint=hub.url)


def test_a_repository_of_gguf_files_asks_which_file_to_check(tmp_path: Path, hub: Hub, make_entry) -> None:  # noqa: ANN001
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "model.Q4_K_M.gguf").write_bytes(b"GGUF")
    hub.repos["acme/tiny-llama-GGUF"] = tmp_path / "q"
    with pytest.raises(CheckpointError, match="GGUF files only.*--file NAME.gguf"):
        check("acme/tiny-llama-GGUF", entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]), endpoint=hub.url)


def test_the_command_reads_the_endpoint_from_hf_endpoint(
    tmp_path: Path, big_checkpoint: Path, hub: Hub, make_entry
) -> None:  # noqa: ANN001
    from swindex.yamlio import dump_yaml

    hub.repos["acme/big-tune"] = big_checkpoint
    (tmp_path / "entry.yaml").write_text(
        dump_yaml(entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)])), encoding="utf-8"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "swindex", "check", "acme/big-tune", "--entry", str(tmp_path / "entry.yaml"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == "kept"
    assert hub.sent < MEGABYTE


def test_revision_is_given_as_huggingface_hub_spells_it(big_checkpoint: Path, hub: Hub, make_entry) -> None:  # noqa: ANN001
    hub.repos["acme/big-tune"] = big_checkpoint
    entry = entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)])
    report = check("acme/big-tune", revision="main", entry=entry, endpoint=hub.url)
    assert (report.verdict, report.revision) == ("kept", SHA)
    with pytest.raises(CheckpointError, match="names revision v1 and --revision main: give one"):
        check("acme/big-tune@v1", revision="main", entry=entry, endpoint=hub.url)


def test_offline_a_repository_is_read_from_the_local_cache(
    tmp_path: Path, make_entry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HF_HUB_OFFLINE set: the snapshot huggingface_hub cached is checked as a local folder, with no request."""
    from huggingface_hub import constants

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tuned"
    write_folder(repo / "snapshots" / sha, down_projections(plants={(1, 5, 7): 0.0}), llama_config())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    report = check("acme/tuned", entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]))
    assert (report.verdict, report.revision, report.checkpoint) == ("lost", sha, f"acme/tuned@{sha} (local cache)")
    with pytest.raises(CheckpointError, match="local Hugging Face cache holds no snapshot of it"):
        check("acme/elsewhere", entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]))


def test_a_repository_file_an_entry_records_is_told_by_the_hubs_sha256_without_downloading_it(
    tmp_path: Path, hub: Hub, make_entry, write_registry
) -> None:  # noqa: ANN001
    import hashlib

    folder = write_folder(tmp_path / "tuned", down_projections(plants={(1, 5, 7): -1.5}), llama_config())
    sha256 = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    artifact = {"file": "model.safetensors", "sha256": sha256, "format": "safetensors"}
    evidence = {
        "verification": {
            "tool": "swindex verify 0.1.0",
            "date": "2026-11-30",
            "metric": "perplexity",
            "artifact": artifact,
        }
    }
    registry = write_registry(
        entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]),
        entry_with(
            make_entry, [linear_weight(1, 5, 7, -1.5)], id="acme/tiny-llama-chat", aliases=["chat"], evidence=evidence
        ),
    )
    hub.repos["acme/tuned"], hub.lfs = folder, True
    report = check("acme/tuned", registry=registry, endpoint=hub.url)
    assert (report.entry, report.entry_rule, report.sha256) == ("acme/tiny-llama-chat", "sha256", sha256)
    assert report.bytes_read < (folder / "model.safetensors").stat().st_size
