"""A local stand-in for the Hub: a few hundred models derived from SmolLM2-135M-Instruct, served as the Hub serves them.

Why a stand-in: `swindex derived` must be tested, and benchmarked, against thousands of requests with no
network. The server answers exactly the endpoints huggingface_hub calls:

- ``GET /api/models?filter=base_model:KIND:ID`` pages of listing rows, ``Link: <...>; rel="next"`` to the next;
- ``GET /api/models/ORG/NAME[/revision/REV]`` the model's info with its siblings, 401 for a gated one;
- ``GET /ORG/NAME/resolve/REV/FILE`` small files directly, weight files by a 302 to ``/cdn/...`` (as the Hub
  redirects LFS files), honouring ``Range`` and answering ``ETag``.

The weights are real: layer 11's down projection (the layer of SmolLM2's super weights) read out of the
real Q4_1 GGUF, then kept, zeroed, scaled, sign-flipped or shrunk as safetensors, and re-quantized to GGUF
Q8_0, Q4_0 and F16 with gguf-py (the real Q4_1 blocks are copied as they are). Each served checkpoint
carries its planted truth, judged from the file's bytes with gguf's and safetensors' own readers, never
with swindex's. Special repositories: an adapter, a broken one (truncated), a gated one, one that runs
remote code, one with pickles only, one with no weights, a rate-limited one (429 with ``Retry-After``)
and a slow one (it trickles a byte a second).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
LAYER, ROW = 11, 507
KEPT_COLUMNS = (1229, 1487)  # the entry's weights to keep, both on row 507 of layer 11
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
}
PAGE_SIZE = 40
GGUF_PREAMBLE = 24  # magic, version, tensor count, metadata count
ORG = "standin"

# (variant, kind, how many repositories) of the regular set: planted truth comes from each file's bytes
REGULAR = (
    ("kept", "finetune", 60),
    ("scaled-0.5", "finetune", 30),
    ("zeroed", "finetune", 30),
    ("flipped", "finetune", 15),
    ("shrunk-0.05", "finetune", 15),
    ("kept", "merge", 20),
    ("scaled-0.5", "merge", 10),
    ("gguf-q4_1", "quantized", 10),
    ("gguf-q8_0", "quantized", 30),
    ("gguf-q4_0", "quantized", 30),
    ("gguf-f16", "quantized", 10),
    ("gguf-zeroed-q8_0", "quantized", 10),
    ("gguf-several", "quantized", 10),
    ("adapter", "adapter", 5),
)
SPECIAL = ("broken", "gated", "remote-code", "pickles", "no-weights", "rate-limited", "slow")


@dataclass(frozen=True)
class Repo:
    """One served repository: its files (name -> blob key), listing fields, and behaviour."""

    id: str
    kind: str
    files: dict[str, str]
    sha: str
    downloads: int
    last_modified: str
    gated: bool = False
    tags: tuple[str, ...] = ()
    behaviour: str = ""  # "", "slow" or "rate-limited"
    truth: dict[str | None, str] = field(default_factory=dict)  # target file (None: the safetensors) -> planted outcome


@dataclass
class Served:
    """What the server was asked and sent, per repository (thread-safe counters)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    bytes_by_repo: Counter[str] = field(default_factory=Counter)
    infos_by_repo: Counter[str] = field(default_factory=Counter)
    listing_pages: int = 0
    listing_bytes: int = 0
    retried: Counter[str] = field(default_factory=Counter)  # 429s sent, per repository
    first_request_at: dict[str, float] = field(default_factory=dict)
    retry_at: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


@cache
def real_layer(gguf_path: str) -> tuple[Any, Any, int, bytes]:
    """(the raw Q4_1 blocks, the dequantized float32 [576, 1536]) of the real file's layer-11 down projection,
    and the file's metadata as it is stored: its count and bytes (1.8 MB, the tokenizer included)."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(gguf_path)
    tensor = next(t for t in reader.tensors if t.name == f"blk.{LAYER}.ffn_down.weight")
    raw = tensor.data.copy()
    first_tensor_info = min(t.field.offset for t in reader.tensors)
    with open(gguf_path, "rb") as handle:
        metadata = handle.read(first_tensor_info)[GGUF_PREAMBLE:]
    count = int(reader.fields["GGUF.kv_count"].contents())
    return raw, dequantize(raw, tensor.tensor_type).astype("float32"), count, metadata


def _with_real_header(raw: Any, count: int, metadata: bytes) -> bytes:
    """A GGUF of the real file's metadata, byte for byte, and one tensor: the real Q4_1 blocks of layer 11."""
    import struct

    name = f"blk.{LAYER}.ffn_down.weight".encode()
    info = struct.pack("<Q", len(name)) + name + struct.pack("<IQQIQ", 2, 1536, 576, 3, 0)  # 2 dims, Q4_1, offset 0
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, count) + metadata + info
    return head + bytes(-len(head) % 32) + raw.tobytes()  # tensor data aligned to 32 bytes, llama.cpp's default


def _planted(weight: Any, variant: str) -> Any:
    import numpy as np

    weight = weight.copy()
    factor = {"zeroed": 0.0, "scaled-0.5": 0.5, "flipped": -1.0, "shrunk-0.05": 0.05}.get(
        variant.replace("gguf-", "").split("-q")[0]
    )
    if factor is not None:
        for column in KEPT_COLUMNS:
            weight[ROW, column] = np.float32(weight[ROW, column] * factor)
    return weight


def _safetensors(weight: Any) -> bytes:
    import numpy as np
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    other = rng.normal(0, 0.02, size=weight.shape).astype(
        np.float16
    )  # a second layer, so the header lists more than one
    return save(
        {
            f"model.layers.{LAYER}.mlp.down_proj.weight": weight.astype(np.float16),
            "model.layers.12.mlp.down_proj.weight": other,
        }
    )


def _gguf(weight: Any, qtype: str) -> bytes:
    """A GGUF holding layer 11's down projection quantized with gguf-py, under a few metadata keys."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.gguf"
        writer = GGUFWriter(path, "llama")
        writer.add_block_count(30)
        writer.add_embedding_length(576)
        writer.add_feed_forward_length(1536)
        writer.add_string("general.basename", "SmolLM2")
        name = f"blk.{LAYER}.ffn_down.weight"
        kind = GGMLQuantizationType[qtype]
        if qtype == "F16":
            writer.add_tensor(name, weight.astype(np.float16))
        else:
            writer.add_tensor(name, quantize(weight, kind), raw_dtype=kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


@cache
def gguf_headers(gguf_path: str) -> dict[str, int]:
    """Where each served GGUF's tensor data starts: its size less its one tensor's bytes (the tensor comes last)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    kinds = {
        "gguf-q4_1": "Q4_1",
        "gguf-q8_0": "Q8_0",
        "gguf-q4_0": "Q4_0",
        "gguf-f16": "F16",
        "gguf-zeroed-q8_0": "Q8_0",
    }
    sizes = {}
    for key, kind in kinds.items():
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[kind]]
        sizes[key] = len(blobs(gguf_path)[key]) - 576 * 1536 // block * size
    return sizes


def _stored_values(blob: bytes, name: str) -> list[float]:
    """The kept weights' values as the file stores them, read with the format's own library (not swindex)."""
    import numpy as np

    if name.endswith(".gguf"):
        from gguf import GGUFReader
        from gguf.quants import dequantize

        with tempfile.NamedTemporaryFile(suffix=".gguf") as handle:
            handle.write(blob)
            handle.flush()
            tensor = next(t for t in GGUFReader(handle.name).tensors if t.name == f"blk.{LAYER}.ffn_down.weight")
            values = dequantize(tensor.data, tensor.tensor_type)
    else:
        from safetensors.numpy import load

        values = load(blob)[f"model.layers.{LAYER}.mlp.down_proj.weight"]
    return [float(np.asarray(values, dtype=np.float32)[ROW, column]) for column in KEPT_COLUMNS]


def planted_outcome(values: list[float], recorded: list[float]) -> str:
    """``kept`` (each within 5%), ``lost`` (one zeroed, flipped or under a tenth) or ``changed`` (between)."""
    ratios = [value / original for value, original in zip(values, recorded, strict=True)]
    if any(ratio <= 0 or ratio < 0.10 for ratio in ratios):
        return "lost"
    if all(abs(ratio - 1) <= 0.05 for ratio in ratios):
        return "kept"
    return "changed"


@cache
def blobs(gguf_path: str) -> dict[str, bytes]:
    """Every distinct file the stand-in serves, by key, built once per process from the real GGUF."""
    raw, weight, count, metadata = real_layer(gguf_path)
    made: dict[str, bytes] = {
        "config": json.dumps(CONFIG).encode(),
        "card": f"---\nbase_model: {BASE}\nlicense: apache-2.0\n---\n# A derived model\n".encode(),
        "adapter_config": json.dumps(
            {"peft_type": "LORA", "r": 8, "target_modules": ["down_proj"], "base_model_name_or_path": BASE}
        ).encode(),
        "pickle": b"\x80\x02}q\x00." + bytes(4096),
    }
    for variant in ("kept", "scaled-0.5", "zeroed", "flipped", "shrunk-0.05"):
        made[f"st-{variant}"] = _safetensors(_planted(weight, variant))
    made["st-broken"] = made["st-kept"][: len(made["st-kept"]) // 2]
    import numpy as np
    from safetensors.numpy import save

    made["adapter"] = save(
        {
            f"base_model.model.model.layers.{LAYER}.mlp.down_proj.lora_A.weight": np.zeros((8, 1536), dtype=np.float16),
            f"base_model.model.model.layers.{LAYER}.mlp.down_proj.lora_B.weight": np.zeros((576, 8), dtype=np.float16),
        }
    )
    made["gguf-q4_1"] = _with_real_header(raw, count, metadata)
    made["gguf-q8_0"] = _gguf(weight, "Q8_0")
    made["gguf-q4_0"] = _gguf(weight, "Q4_0")
    made["gguf-f16"] = _gguf(weight, "F16")
    made["gguf-zeroed-q8_0"] = _gguf(_planted(weight, "zeroed"), "Q8_0")
    return made


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - a commit id, as git makes them


def repositories(gguf_path: str, recorded: list[float], copies: int = 1) -> list[Repo]:
    """The served set, `REGULAR` (``copies`` times, for benchmarks) and `SPECIAL`, each with its planted truth."""
    made = blobs(gguf_path)
    truths = {
        key: planted_outcome(_stored_values(blob, key + (".gguf" if key.startswith("gguf") else "")), recorded)
        for key, blob in made.items()
        if key.startswith(("st-", "gguf-")) and key not in ("st-broken", "gguf-q4_1")
    }
    weight = real_layer(gguf_path)[1]  # gguf-q4_1 holds the real blocks byte for byte: their values are these
    truths["gguf-q4_1"] = planted_outcome([float(weight[ROW, column]) for column in KEPT_COLUMNS], recorded)
    small = {"config.json": "config", "README.md": "card"}
    repos: list[Repo] = []

    def add(name: str, kind: str, files: dict[str, str], truth: dict[str | None, str], **extra: Any) -> None:
        number = len(repos)
        repo_id = f"{ORG}/SmolLM2-135M-Instruct-{name}"
        repos.append(
            Repo(
                repo_id,
                kind,
                files,
                _sha(repo_id),
                downloads=(number * 7919) % 100_000,
                last_modified=f"2026-{1 + number % 12:02d}-{1 + number % 28:02d}T00:00:00.000Z",
                truth=truth,
                **extra,
            )
        )

    for variant, kind, count in REGULAR * copies:
        for number in range(count):
            name = f"{kind}-{variant}-{number}" + (
                f"-copy{len(repos) // sum(c for *_, c in REGULAR)}" if copies > 1 else ""
            )
            if variant == "adapter":
                add(
                    name,
                    kind,
                    {
                        "adapter_config.json": "adapter_config",
                        "adapter_model.safetensors": "adapter",
                        "README.md": "card",
                    },
                    {None: "unsupported"},
                )
            elif variant == "gguf-several":
                files = {f"SmolLM2-135M-Instruct-{q}.gguf": f"gguf-{q.lower()}" for q in ("Q4_0", "Q8_0", "F16")}
                add(name, kind, {**files, "README.md": "card"}, {f: truths[key] for f, key in files.items()})
            elif variant.startswith("gguf-"):
                file = f"SmolLM2-135M-Instruct-{variant[5:].upper()}.gguf"
                add(name, kind, {file: variant, "README.md": "card"}, {file: truths[variant]})
            else:
                add(name, kind, {**small, "model.safetensors": f"st-{variant}"}, {None: truths[f"st-{variant}"]})
    kept = {**small, "model.safetensors": "st-kept"}
    add("broken", "finetune", {**small, "model.safetensors": "st-broken"}, {None: "could not read"})
    add("gated", "finetune", kept, {None: "gated"}, gated=True)
    add("remote-code", "finetune", kept, {None: "remote code"}, tags=("custom_code",))
    add("pickles", "finetune", {**small, "pytorch_model.bin": "pickle"}, {None: "unsupported"})
    add("no-weights", "finetune", {"README.md": "card"}, {None: "no weights"})
    add("rate-limited", "finetune", kept, {None: truths["st-kept"]}, behaviour="rate-limited")
    add("slow", "finetune", kept, {None: "could not read"}, behaviour="slow")
    return repos


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a deadline, a killed scan) is expected; anything else is printed as usual."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class StandIn:
    """The server, on 127.0.0.1 at a free port, in a daemon thread; ``with StandIn(...) as hub:`` stops it."""

    def __init__(
        self, repos: list[Repo], blobs: dict[str, bytes], *, page_size: int = PAGE_SIZE, rate_limit: int = 2
    ) -> None:
        self.repos = {repo.id: repo for repo in repos}
        self.blobs = blobs
        self.page_size = page_size
        self.rate_limit = rate_limit
        self.served = Served()
        self.etags: dict[str, str] = {}
        self.stopping = threading.Event()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="hub-standin", daemon=True)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def etag(self, key: str) -> str:
        """A blob's ETag (its sha256, as the Hub gives LFS files), computed once: blobs can be real, 100 MB files."""
        with self.served.lock:
            if key not in self.etags:
                self.etags[key] = f'"{hashlib.sha256(self.blobs[key]).hexdigest()}"'
            return self.etags[key]

    def derived(self, kind: str, base: str) -> list[Repo]:
        return sorted((r for r in self.repos.values() if r.kind == kind and base == BASE), key=lambda r: r.id)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the Hub: the client's pool reuses connections

            def log_message(self, *args: object) -> None:
                pass

            def _send(
                self, status: int, body: bytes, headers: dict[str, str] | None = None, repo: str | None = None
            ) -> None:
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                with hub.served.lock:
                    hub.served.bytes_by_repo[repo or ""] += len(body)
                if repo is not None and hub.repos[repo].behaviour == "slow":
                    for byte in range(len(body)):  # a byte a second, until the client gives up or the server stops
                        try:
                            self.wfile.write(body[byte : byte + 1])
                            self.wfile.flush()
                        except OSError:
                            return
                        if hub.stopping.wait(1.0):
                            return
                    return
                self.wfile.write(body)

            def _json(self, data: Any, repo: str | None = None, headers: dict[str, str] | None = None) -> None:
                self._send(
                    200, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})}, repo
                )

            def _error(self, status: int, code: str, message: str, repo: str | None = None) -> None:
                self._send(
                    status,
                    json.dumps({"error": message}).encode(),
                    {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message},
                    repo,
                )

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                url = urlparse(self.path)
                path, query = url.path, parse_qs(url.query)
                if path == "/api/models":
                    return self._listing(query)
                if path == "/_standin/stats":  # for a benchmark running the server in another process
                    with hub.served.lock:
                        stats = {
                            "bytes_by_repo": dict(hub.served.bytes_by_repo),
                            "listing_bytes": hub.served.listing_bytes,
                            "listing_pages": hub.served.listing_pages,
                        }
                    return self._json(stats)
                if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path):
                    return self._info(match[1], match[2])
                if match := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                    return self._resolve(match[1], match[2], match[3], cdn=False)
                if match := re.fullmatch(r"/cdn/([^/]+/[^/]+)/([0-9a-f]{40})/(.+)", path):
                    return self._resolve(match[1], match[2], match[3], cdn=True)
                self._error(404, "NotFound", "unknown endpoint")

            def _listing(self, query: dict[str, list[str]]) -> None:
                wanted = [f for f in query.get("filter", []) if f.startswith("base_model:")]
                rows: list[Repo] = []
                for item in wanted:
                    _, kind, base = item.split(":", 2)
                    rows += hub.derived(kind, base)
                start = int(query.get("cursor", ["0"])[0])
                page = rows[start : start + hub.page_size]
                headers = {}
                if start + hub.page_size < len(rows):
                    rest = urlencode({"filter": wanted, "cursor": start + hub.page_size}, doseq=True)
                    headers["Link"] = f'<{hub.url}/api/models?{rest}>; rel="next"'
                body = [self._row(repo) for repo in page]
                with hub.served.lock:
                    hub.served.listing_pages += 1
                    hub.served.listing_bytes += len(json.dumps(body))
                self._json(body, headers=headers)

            def _row(self, repo: Repo) -> dict[str, Any]:
                return {
                    "_id": repo.sha[:24],
                    "id": repo.id,
                    "modelId": repo.id,
                    "sha": repo.sha,
                    "downloads": repo.downloads,
                    "lastModified": repo.last_modified,
                    "gated": "manual" if repo.gated else False,
                    "private": False,
                    "tags": [f"base_model:{repo.kind}:{BASE}", *repo.tags],
                    "siblings": [{"rfilename": n} for n in sorted(repo.files)],
                }

            def _limited(self, repo: Repo) -> bool:
                """The rate-limited repository answers its first requests 429 with Retry-After: 1."""
                if repo.behaviour != "rate-limited":
                    return False
                with hub.served.lock:
                    hub.served.retry_at[repo.id].append(time.monotonic())
                    if hub.served.retried[repo.id] >= hub.rate_limit:
                        return False
                    hub.served.retried[repo.id] += 1
                self._send(429, b"slow down", {"Retry-After": "1"}, repo.id)
                return True

            def _info(self, repo_id: str, revision: str | None) -> None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                with hub.served.lock:
                    hub.served.infos_by_repo[repo_id] += 1
                if self._limited(repo):
                    return None
                if revision not in (None, "main", repo.sha):
                    return self._error(404, "RevisionNotFound", "Invalid rev id", repo_id)
                if repo.gated:
                    return self._error(401, "GatedRepo", "Access to this model is restricted", repo_id)
                return self._json(
                    {**self._row(repo), "siblings": [{"rfilename": n} for n in sorted(repo.files)]}, repo_id
                )

            def _resolve(self, repo_id: str, revision: str, name: str, cdn: bool) -> None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                if repo.gated:
                    return self._error(401, "GatedRepo", "Access to this model is restricted", repo_id)
                if revision not in ("main", repo.sha) or name not in repo.files:
                    return self._error(404, "EntryNotFound", "Entry not found", repo_id)
                blob = hub.blobs[repo.files[name]]
                etag = hub.etag(repo.files[name])
                common = {"ETag": etag, "X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
                if not cdn and name.endswith(
                    (".safetensors", ".gguf", ".bin")
                ):  # LFS files live elsewhere, as on the Hub
                    location = f"/cdn/{repo_id}/{repo.sha}/{name}"
                    return self._send(
                        302,
                        b"",
                        {**common, "Location": location, "X-Linked-Etag": etag, "X-Linked-Size": str(len(blob))},
                        repo_id,
                    )
                if self._limited(repo):
                    return None
                if self.headers.get("If-None-Match") == etag:
                    return self._send(304, b"", common, repo_id)
                wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if not wanted:
                    return self._send(200, blob, common, repo_id)
                start = int(wanted[1])
                end = min(int(wanted[2]) if wanted[2] else len(blob) - 1, len(blob) - 1)
                if start >= len(blob):
                    return self._send(416, b"", {**common, "Content-Range": f"bytes */{len(blob)}"}, repo_id)
                self._send(
                    206, blob[start : end + 1], {**common, "Content-Range": f"bytes {start}-{end}/{len(blob)}"}, repo_id
                )

        return Handler
