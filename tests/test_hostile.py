"""Hostile input, round 3: every file, reply or request swindex does not control ends in one line naming it,
within its deadline and under 512 MB, with no escape code reaching the terminal and no downgrade of the cache
or of a fetch.

Big inputs are sparse files (``truncate``) or replies generated as they are sent; servers listen on 127.0.0.1
only and stop by themselves; deadlines are shortened through ``swindex.limits``. Memory is measured in a
child process (its peak RSS) so one test's allocations cannot hide another's.
"""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from check_support import HIDDEN, down_projections, entry_with, linear_weight, llama_config, write_folder, write_gguf
from conftest import BASE_ENTRY

import swindex.constants
import swindex.registry
from swindex import limits
from swindex import update as upd
from swindex.checkpoint import CheckpointError, check
from swindex.cli import main
from swindex.errors import SwindexError
from swindex._lookup import clear_cache, lookup
from swindex.records import SCHEMA_VERSION
from swindex.registry import build_index
from swindex.yamlio import dump_yaml

MEMORY_BOUND_MB = 512
SERVER_LIFETIME_S = 10.0
"""A test server gives up on a client after this long, so no server outlives its test by much."""
ENDLESS_BYTES = 1 << 30
"""The most an endless reply sends: twice the memory bound, were a client to keep it all."""
DEEP = 100_000
MANY_DIGITS = "9" * 5_000


@pytest.fixture
def entry(make_entry: Callable[..., dict]) -> dict:
    return entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)])


@pytest.fixture
def entry_file(tmp_path: Path, entry: dict) -> Path:
    path = tmp_path / "entry.yaml"
    path.write_text(dump_yaml(entry), encoding="utf-8")
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A well-formed float32 checkpoint keeping the entry's weight: hostile parts are added to it."""
    return write_folder(tmp_path / "model", down_projections(plants={(1, 5, 7): -1.5}), llama_config())


def safetensors_file(path: Path, header: bytes | dict, data_size: int = 0) -> Path:
    """A safetensors file with this header and ``data_size`` bytes of data, left sparse on disk."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        handle.truncate(8 + len(text) + data_size)
    return path


def gguf_header(kv: bytes = b"", kv_count: int = 0, tensors: bytes = b"", tensor_count: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensor_count, kv_count) + kv + tensors


def gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


@dataclass
class Run:
    """A swindex command run in a child process: exit status, output as bytes, and its peak memory."""

    status: int
    stdout: bytes
    stderr: bytes
    peak_mb: int

    @property
    def error(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def run_cli(args: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> Run:
    """``swindex ARGS`` in a child process, with its peak RSS: VmHWM, the high-water mark of the child's own memory
    (ru_maxrss would also count the parent's, which Linux carries across the fork and exec)."""
    script = textwrap.dedent(
        f"""
        import os, re, resource, sys
        from swindex.cli import main
        try:
            status = main([os.fsdecode(a) for a in {[os.fsencode(a) for a in args]!r}])
        finally:
            sys.stdout.flush()
            try:
                with open("/proc/self/status") as status_file:
                    peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status_file.read())[1]) // 1024
            except OSError:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            sys.stderr.write("\\npeak-rss-mb=%d\\n" % peak)
        sys.exit(status)
        """
    )
    environment = {**os.environ, "HF_HUB_OFFLINE": "0", "PYTHONIOENCODING": "utf-8", **(env or {})}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=timeout, env=environment)
    stderr, _, peak = done.stderr.rpartition(b"peak-rss-mb=")
    return Run(done.returncode, done.stdout, stderr.rstrip(), int(peak or 0))


def assert_one_clean_line(run: Run, status: int, says: str) -> None:
    assert run.status == status, run.error
    assert says in run.error
    assert "Traceback" not in run.error and len(run.error.strip().splitlines()) == 1, run.error
    assert run.peak_mb < MEMORY_BOUND_MB


# --- Servers on 127.0.0.1 that stop by themselves ------------------------------------------------------------


@dataclass
class Server:
    url: str
    sent: int = 0


Answer = Callable[[BaseHTTPRequestHandler, Server], None]
Serve = Callable[[Answer], Server]


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler, Server], None]], Server]]:
    """``serve(answer)``: a server on 127.0.0.1 calling ``answer(handler, state)`` for each GET, shut after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[BaseHTTPRequestHandler, Server], None]) -> Server:
        state = Server(url="")

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                try:
                    answer(self, state)
                except (ConnectionError, TimeoutError):
                    pass  # the client gave up, as it should

            def setup(self) -> None:
                super().setup()
                self.connection.settimeout(SERVER_LIFETIME_S)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def send(
    handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    handler.send_response(status)
    for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def drip(handler: BaseHTTPRequestHandler, every: float, headers: dict[str, str] | None = None) -> None:
    """Headers at once, then one byte ``every`` seconds, for at most SERVER_LIFETIME_S: a reply that never ends."""
    handler.send_response(200)
    for key, value in {"Content-Length": "1000000", **(headers or {})}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.flush()
    stop = time.monotonic() + SERVER_LIFETIME_S
    while time.monotonic() < stop:
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(every)


def endless(handler: BaseHTTPRequestHandler, chunks: Iterator[bytes], headers: dict[str, str]) -> None:
    """A reply of no stated length that goes on until the client hangs up, SERVER_LIFETIME_S or ENDLESS_BYTES."""
    handler.send_response(200)
    for key, value in {"Connection": "close", **headers}.items():
        handler.send_header(key, value)
    handler.end_headers()
    stop, sent = time.monotonic() + SERVER_LIFETIME_S, 0
    for chunk in chunks:
        if time.monotonic() > stop or sent > ENDLESS_BYTES:
            break
        handler.wfile.write(chunk)
        sent += len(chunk)


def zeros_gzipped() -> Iterator[bytes]:
    """A gzip stream of zeros made as it is sent: about 1,000 bytes of zeros for every byte on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    while True:
        yield packer.compress(block) + packer.flush(zlib.Z_SYNC_FLUSH)


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi, constants, get_session

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs offline; these servers are local
    assert HfApi and get_session()  # imported and built before a test times a request


# --- Crashes: nesting and long integers anywhere JSON or YAML is parsed ---------------------------------------


@pytest.mark.parametrize("where", ["header", "config.json", "index"])
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[" * DEEP, f"nests deeper than {limits.MAX_DEPTH} levels"),
        (f'{{"n": {MANY_DIGITS}}}', "an integer of 5,000 digits"),
    ],
    ids=["deep", "digits"],
)
def test_json_too_deep_or_with_a_huge_integer_is_one_line_naming_the_file(
    tmp_path: Path, model: Path, entry: dict, where: str, text: str, says: str
) -> None:
    if where == "header":
        target = safetensors_file(model / "model.safetensors", text.encode())
    elif where == "config.json":
        target = model / "config.json"
        target.write_text(text, encoding="utf-8")
    else:  # an index is read only without model.safetensors, which transformers (and check) prefer to it
        (model / "model.safetensors").unlink()
        target = model / "model.safetensors.index.json"
        target.write_text(f'{{"weight_map": {text}}}' if text.startswith("[") else text, encoding="utf-8")
    with pytest.raises(CheckpointError, match=says) as caught:
        check(model, entry=entry)
    assert str(target) in str(caught.value) or (where == "header" and str(model) in str(caught.value))


def depth(value: Any) -> int:
    """How deeply JSON data nests (a scalar 0, an empty list 1), the plain recursive way."""
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max((depth(child) for child in children), default=0)


tricky_text = st.text(alphabet='[]{}"\\\\ax\u00e9\ud7ff', max_size=6)
json_data = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(json_data, st.integers(min_value=0, max_value=40))
def test_json_is_refused_exactly_when_it_nests_deeper_than_the_limit(value: Any, extra: int) -> None:
    for _ in range(extra):  # deepen it past the limit as often as not
        value = [value]
    text = json.dumps(value, ensure_ascii=extra % 2 == 0).encode()
    if depth(value) > limits.MAX_DEPTH:
        with pytest.raises(limits.ParseError, match="nests deeper"):
            limits.load_json(text, "data")
    else:
        assert limits.load_json(text, "data") == value


def test_a_model_card_nested_20000_deep_is_ignored_and_the_check_goes_on(model: Path, entry: dict) -> None:
    (model / "README.md").write_text("---\nbase_model: " + "[" * 20_000 + "\n---\n# card\n", encoding="utf-8")
    report = check(model, entry=entry)
    assert report.verdict == "kept"


@pytest.mark.parametrize("matter", ["n: " + MANY_DIGITS, "a: &x [1, 2]\nb: *x"], ids=["digits", "alias"])
def test_a_model_card_with_a_huge_integer_or_an_alias_is_ignored(model: Path, entry: dict, matter: str) -> None:
    (model / "README.md").write_text(f"---\n{matter}\n---\n", encoding="utf-8")
    assert check(model, entry=entry).verdict == "kept"


def test_gguf_arrays_nested_3000_deep_are_refused(tmp_path: Path, entry: dict) -> None:
    nested = struct.pack("<I", 9) + (struct.pack("<IQ", 9, 1) * 3_000) + struct.pack("<IQ", 0, 0)
    path = tmp_path / "nested.gguf"
    path.write_bytes(gguf_header(gguf_string("deep") + nested, kv_count=1) + bytes(64))
    with pytest.raises(CheckpointError, match=f"nests arrays more than {limits.MAX_GGUF_NESTING} deep"):
        check(path, entry=entry)


def dump_with_notes(make_entry: Callable[..., dict], depth: int) -> bytes:
    """A one-entry dump whose entry's notes are a list nested ``depth`` deep (written as text: Python would recurse)."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "entries": [{"path": "registry/acme/tiny-llama.yaml", "entry": make_entry(notes="NOTES")}],
    }
    return json.dumps(document).replace('"NOTES"', "[" * depth + "]" * depth).encode()


def test_a_dump_entry_nested_900_deep_is_refused_before_validation(make_entry: Callable[..., dict]) -> None:
    with pytest.raises(upd.UpdateError, match=f"nests deeper than {limits.MAX_DEPTH} levels"):
        upd.checked_entries(upd._parse_json(dump_with_notes(make_entry, 900), "dump"), "dump")


def test_an_entry_at_the_nesting_limit_gets_a_validation_problem_not_a_crash(make_entry: Callable[..., dict]) -> None:
    from swindex.errors import ValidationError

    within = limits.MAX_DEPTH - 4  # the dump's own levels (document, entries, item, entry) take the rest
    with pytest.raises(ValidationError, match="notes"):
        upd.checked_entries(upd._parse_json(dump_with_notes(make_entry, within), "dump"), "dump")


def test_a_gguf_tensor_with_a_zero_dimension_is_refused(tmp_path: Path, entry: dict) -> None:
    tensor = (
        gguf_string("blk.1.ffn_down.weight")
        + struct.pack("<I", 2)
        + struct.pack("<QQ", 1 << 62, 0)
        + struct.pack("<IQ", 0, 0)
    )
    path = tmp_path / "flat.gguf"
    path.write_bytes(gguf_header(tensors=tensor, tensor_count=1) + bytes(64))
    with pytest.raises(CheckpointError, match=r"has shape \[4611686018427387904, 0\]; ggml dimensions are 1 to"):
        check(path, entry=entry)


# --- Hangs: every step bounded by the file's size, every request by a whole deadline ------------------------


def test_a_gguf_array_of_2_40_empty_strings_is_refused_at_once(tmp_path: Path, entry: dict) -> None:
    path = tmp_path / "vocab.gguf"
    path.write_bytes(
        gguf_header(gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 1 << 40), kv_count=1) + bytes(64)
    )
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="more than fit in the rest of the file"):
        check(path, entry=entry)
    assert time.perf_counter() - started < 1


def test_a_2_gb_gguf_of_empty_strings_is_refused_without_stepping_through_them(
    tmp_path: Path, entry_file: Path
) -> None:
    path = tmp_path / "vocab.gguf"
    count = (2 << 30) // 8 - 64  # 268 million strings of length 0: what the 2 GB of zeros after the header holds
    with path.open("wb") as handle:
        handle.write(gguf_header(gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, count), kv_count=1))
        handle.truncate(2 << 30)
    started = time.perf_counter()
    run = run_cli(["check", str(path), "--entry", str(entry_file)], timeout=30)
    assert_one_clean_line(run, 2, f"hold over {limits.MAX_GGUF_ARRAY_ITEMS:,} strings")
    assert time.perf_counter() - started < 15


DRIPS = pytest.mark.parametrize("every", [0.1, 0.8], ids=["fast-drip", "just-before-each-read-times-out"])


@DRIPS
def test_a_remote_check_against_a_dripping_server_ends_at_its_deadline(
    serve: Serve, hub_online: None, entry: dict, monkeypatch: pytest.MonkeyPatch, every: float
) -> None:
    monkeypatch.setattr(limits, "REQUEST_DEADLINE_S", 1.0)
    server = serve(lambda handler, state: drip(handler, every, {"Content-Type": "application/json"}))
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="took over 1 s"):
        check("acme/slow", entry=entry, endpoint=server.url)
    assert time.monotonic() - started < limits.REQUEST_DEADLINE_S + 0.5


@DRIPS
def test_update_against_a_dripping_server_ends_at_its_deadline(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: float
) -> None:
    monkeypatch.setattr(limits, "UPDATE_DEADLINE_S", 1.0)
    server = serve(lambda handler, state: drip(handler, every))
    started = time.monotonic()
    with pytest.raises(upd.UpdateError, match="took over 1 s"):
        upd.update(site=server.url, cache=tmp_path / "cache.json")
    assert time.monotonic() - started < limits.UPDATE_DEADLINE_S + 0.5


# --- Memory: rows bounded by the entry, headers and replies capped before they are parsed --------------------


def hostile_row_file(tmp_path: Path, form: str, length: int) -> Path:
    """A checkpoint whose layer-1 down projection has rows of ``length`` float32 values (sparse on disk)."""
    if form == "safetensors":
        header = {
            "model.layers.1.mlp.down_proj.weight": {
                "dtype": "F32",
                "shape": [HIDDEN, length],
                "data_offsets": [0, HIDDEN * length * 4],
            }
        }
        return safetensors_file(tmp_path / "model.safetensors", header, HIDDEN * length * 4)
    name = gguf_string("blk.1.ffn_down.weight")
    tensor = name + struct.pack("<I", 2) + struct.pack("<QQ", length, HIDDEN) + struct.pack("<IQ", 0, 0)
    head = gguf_header(tensors=tensor, tensor_count=1)
    path = tmp_path / "model.gguf"
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(-(-len(head) // 32) * 32 + HIDDEN * length * 4)
    return path


@pytest.mark.parametrize(("form", "length"), [("safetensors", 100_000_000), ("gguf", 160_000_000)])
def test_a_row_longer_than_the_entry_allows_is_refused_before_it_is_read(
    tmp_path: Path, entry_file: Path, form: str, length: int
) -> None:
    path = hostile_row_file(tmp_path, form, length)
    run = run_cli(["check", str(path), "--entry", str(entry_file)])
    assert_one_clean_line(run, 2, f"rows of {length:,} values")


def test_a_remote_row_longer_than_the_entry_allows_downloads_almost_nothing(
    tmp_path: Path, hub_online: None, entry: dict
) -> None:
    from test_check_remote import Hub, serve as serve_hub

    folder = tmp_path / "repo"
    folder.mkdir()
    hostile_row_file(folder, "safetensors", 100_000_000)
    (folder / "config.json").write_text(json.dumps(llama_config()), encoding="utf-8")
    hub = Hub(repos={"acme/wide": folder})
    server = serve_hub(hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(SwindexError, match="rows of 100,000,000 values"):
            check("acme/wide", entry=entry, endpoint=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert hub.sent < 64 << 10


def test_a_safetensors_header_over_the_cap_is_refused_unread(tmp_path: Path, entry_file: Path) -> None:
    path = tmp_path / "model.safetensors"
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", 100_000_000 - 8))
        handle.truncate(100_000_000)
    run = run_cli(["check", str(path), "--entry", str(entry_file)])
    assert_one_clean_line(run, 2, f"more than the {limits.MAX_HEADER_BYTES:,} check reads")


def test_a_header_listing_more_tensors_than_the_cap_is_refused_before_parsing(tmp_path: Path, entry_file: Path) -> None:
    count = limits.MAX_TENSORS + 1
    items = ",".join(f'"t{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},{4 * i + 4}]}}' for i in range(count))
    path = safetensors_file(tmp_path / "model.safetensors", ("{" + items + "}").encode(), 4 * count)
    run = run_cli(["check", str(path), "--entry", str(entry_file)])
    assert_one_clean_line(run, 2, f"lists {count:,} tensors, more than the {limits.MAX_TENSORS:,}")


@pytest.mark.parametrize("reply", ["plain", "gzip"])
def test_a_huge_or_compressed_model_info_reply_is_cut_at_the_cap(serve: Serve, entry_file: Path, reply: str) -> None:
    def answer(handler: BaseHTTPRequestHandler, state: Server) -> None:
        if reply == "plain":
            files = iter(lambda: b'{"rfilename": "model.safetensors"},' * 30_000, None)
            endless(handler, chain(b'{"sha": "0", "siblings": [', files), {"Content-Type": "application/json"})
        else:
            endless(handler, zeros_gzipped(), {"Content-Type": "application/json", "Content-Encoding": "gzip"})

    server = serve(answer)
    run = run_cli(["check", "acme/huge", "--entry", str(entry_file)], env={"HF_ENDPOINT": server.url})
    assert_one_clean_line(run, 2, f"over {limits.MAX_REPLY_BYTES:,} bytes")


def chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


@pytest.mark.parametrize(
    ("dump", "says"),
    [
        (
            lambda: chain(b'{"schema_version": 2, "entries": [', iter(lambda: b"0," * 50_000, None)),
            f"over {limits.MAX_DUMP_BYTES:,} bytes",
        ),
        (
            lambda: iter([b'{"schema_version": %d, "entries": [' % SCHEMA_VERSION + b"0," * 3_000_000 + b"0]}"]),
            f"over the {limits.MAX_DUMP_ENTRIES:,} accepted",
        ),
    ],
    ids=["endless", "millions-of-items"],
)
def test_a_huge_dump_is_refused_in_bounded_memory(
    serve: Serve, tmp_path: Path, dump: Callable[[], Iterator[bytes]], says: str
) -> None:
    server = serve(lambda handler, state: endless(handler, dump(), {"Content-Type": "application/json"}))
    run = run_cli(["update", "--site", server.url], env={upd.CACHE_DIR_ENV: str(tmp_path / "cache")})
    assert_one_clean_line(run, 1, says)


def test_a_dump_of_thousands_of_bad_entries_prints_a_few_problems(serve: Serve, tmp_path: Path) -> None:
    bad = json.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "entries": [{"path": "x", "entry": {"id": f"acme/m{i}"}} for i in range(5_000)],
        }
    ).encode()
    server = serve(lambda handler, state: send(handler, 200, bad))
    run = run_cli(["update", "--site", server.url], env={upd.CACHE_DIR_ENV: str(tmp_path / "cache")})
    assert run.status == 1 and "Traceback" not in run.error
    assert f"{limits.MAX_PROBLEMS + 1} problem(s)" in run.error and "more entries not checked" in run.error
    assert len(run.stderr) < 20_000


# --- Unsafe: escape codes, redirect downgrades, cache pinning, links out of the site ------------------------

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\u202e\x85"
"""Clear the screen, set the window title, reverse the text, a C1 control: none may reach a terminal raw."""


def test_names_from_a_file_reach_the_terminal_escaped(tmp_path: Path, entry_file: Path) -> None:
    import gguf

    tensors = {f"blk.1.ffn_down{ESCAPES}.weight": down_projections()["model.layers.1.mlp.down_proj.weight"]}
    path = write_gguf(tmp_path / "model.gguf", tensors, gguf.GGMLQuantizationType.F32)
    run = run_cli(["check", str(path), "--entry", str(entry_file)])
    assert run.status == 2 and b"\x1b" not in run.stderr and "\u202e" not in run.error and "\x85" not in run.error
    assert "\\x1b[2J" in run.error and "\\u202e" in run.error


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_file_name_with_a_lone_surrogate_or_bidi_override_prints_as_escapes(
    tmp_path: Path, entry_file: Path, output: str
) -> None:
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5}), llama_config())
    hostile = folder / os.fsdecode(b"\xff\xe2\x80\xae\x1b[2Jmodel.safetensors")  # not UTF-8, U+202E, ESC
    (folder / "model.safetensors").rename(hostile)
    run = run_cli(["check", str(hostile), "--entry", str(entry_file), *(["--json"] if output == "json" else [])])
    assert run.status == 0, run.error
    assert b"\x1b" not in run.stdout and "\u202e".encode() not in run.stdout
    if output == "json":
        assert run.stdout.isascii() and json.loads(run.stdout)["verdict"] == "kept"
    else:
        assert b"\\udcff\\u202e\\x1b[2J" in run.stdout


def test_hub_file_names_reach_the_terminal_escaped(serve: Serve, entry_file: Path) -> None:
    def answer(handler: BaseHTTPRequestHandler, state: Server) -> None:
        send(handler, 200, json.dumps({"sha": "0" * 40, "siblings": [{"rfilename": f"{ESCAPES}.gguf"}]}).encode())

    server = serve(answer)
    run = run_cli(["check", "acme/titles", "--entry", str(entry_file)], env={"HF_ENDPOINT": server.url})
    assert run.status == 2 and "GGUF files only" in run.error
    assert b"\x1b" not in run.stderr and b"\x07" not in run.stderr


def redirect_to(target: str) -> Callable[[BaseHTTPRequestHandler, Server], None]:
    def answer(handler: BaseHTTPRequestHandler, state: Server) -> None:
        send(handler, 302, headers={"Location": target})

    return answer


@pytest.mark.parametrize("target", ["http://swindex-test.invalid/api/v2/all.json", "ftp://127.0.0.1/all.json"])
def test_update_checks_every_redirect_hop(serve: Serve, tmp_path: Path, target: str) -> None:
    server = serve(redirect_to(target))
    with pytest.raises(upd.UpdateError, match="redirected to"):
        upd.update(site=server.url, cache=tmp_path / "cache.json")
    assert not (tmp_path / "cache.json").exists()


def test_a_remote_check_checks_every_redirect_hop(serve: Serve, hub_online: None, entry: dict) -> None:
    server = serve(redirect_to("http://swindex-test.invalid/api/models/acme/moved"))
    with pytest.raises(CheckpointError, match="redirected to http://swindex-test.invalid/"):
        check("acme/moved", entry=entry, endpoint=server.url)


def test_a_redirect_within_this_machine_is_followed(
    serve: Serve, tmp_path: Path, make_entry: Callable[..., dict]
) -> None:
    dump = site_dump(make_entry())
    site = serve(lambda handler, state: send(handler, 200, dump))
    mover = serve(redirect_to(f"{site.url}/elsewhere.json"))
    assert upd.update(site=mover.url, cache=tmp_path / "cache.json").status == "updated"


def site_dump(*entries: dict) -> bytes:
    return json.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "entries": [{"path": f"registry/{e['id']}.yaml", "entry": e} for e in entries],
        }
    ).encode()


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_entry: Callable[..., dict]) -> Iterator[Path]:
    """swindex as a wheel installs it: a packaged index of two entries, an empty cache; returns the cache file."""
    registry = tmp_path / "packaged"
    for entry in (make_entry(), {**copy.deepcopy(BASE_ENTRY), "id": "acme/other-llama", "aliases": []}):
        (registry / f"{entry['id']}.yaml").parent.mkdir(parents=True, exist_ok=True)
        (registry / f"{entry['id']}.yaml").write_text(dump_yaml(entry), encoding="utf-8")
    monkeypatch.setattr(swindex.constants, "default_registry_dir", lambda: None)
    monkeypatch.setattr(
        swindex.constants, "PACKAGED_INDEX", build_index(registry, tmp_path / "wheel" / "registry.json")
    )
    monkeypatch.setenv(upd.CACHE_DIR_ENV, str(tmp_path / "cache"))
    for name in (upd.OFFLINE_ENV, upd.SITE_URL_ENV, "SWINDEX_REGISTRY", "SWINDEX_TODAY"):
        monkeypatch.delenv(name, raising=False)
    clear_cache()
    yield tmp_path / "cache" / upd.CACHE_FILE
    clear_cache()


def newer(make_entry: Callable[..., dict], model_id: str) -> dict:
    """A valid entry dated today: newer than the packaged index, and not in the future."""
    from swindex.dates import today

    return {**make_entry(), "id": model_id, "aliases": [], "modified": today()}


def test_a_dump_dated_in_the_future_is_refused(
    serve: Serve, installed: Path, make_entry: Callable[..., dict], capsys: pytest.CaptureFixture
) -> None:
    site = serve(
        lambda handler, state: send(
            handler, 200, site_dump({**newer(make_entry, "acme/pinned"), "modified": "9999-12-31"})
        )
    )
    assert main(["update", "--site", site.url]) == 1
    assert "9999-12-31 is in the future" in capsys.readouterr().err
    assert not installed.exists()


def test_a_cache_dated_in_the_future_is_never_chosen(
    serve: Serve, installed: Path, make_entry: Callable[..., dict]
) -> None:
    site = serve(
        lambda handler, state: send(handler, 200, site_dump(make_entry(), newer(make_entry, "acme/other-llama")))
    )
    assert upd.update(site=site.url).status == "updated"
    document = json.loads(installed.read_text(encoding="utf-8"))
    document["modified"] = "9999-12-31"  # written by hand, past update's own check
    installed.write_text(json.dumps(document), encoding="utf-8")
    assert swindex.registry_source().kind == "packaged"


def test_a_smaller_dump_never_hides_packaged_entries(
    serve: Serve, installed: Path, make_entry: Callable[..., dict], capsys: pytest.CaptureFixture
) -> None:
    site = serve(lambda handler, state: send(handler, 200, site_dump(newer(make_entry, "acme/just-one"))))
    assert main(["update", "--site", site.url]) == 0
    err = capsys.readouterr().err
    assert (
        "lookups use the packaged index" in err
        and "lacks 2 entries the packaged index has (acme/other-llama, acme/tiny-llama)" in err
    )
    assert lookup("acme/other-llama").id == "acme/other-llama"


def test_a_dump_covering_every_packaged_entry_is_used(
    serve: Serve, installed: Path, make_entry: Callable[..., dict]
) -> None:
    everything = site_dump(make_entry(), newer(make_entry, "acme/other-llama"), newer(make_entry, "acme/fresh"))
    site = serve(lambda handler, state: send(handler, 200, everything))
    assert upd.update(site=site.url).status == "updated"
    assert swindex.registry_source().kind == "cache" and lookup("acme/fresh").id == "acme/fresh"


def test_update_clear_deletes_the_cache(
    serve: Serve, installed: Path, make_entry: Callable[..., dict], capsys: pytest.CaptureFixture
) -> None:
    site = serve(
        lambda handler, state: send(handler, 200, site_dump(make_entry(), newer(make_entry, "acme/other-llama")))
    )
    assert main(["update", "--site", site.url]) == 0 and installed.exists()
    assert main(["update", "--clear"]) == 0
    assert not installed.exists() and f"deleted {installed}" in capsys.readouterr().err
    assert swindex.registry_source().kind == "packaged"


def always_304(handler: BaseHTTPRequestHandler, state: Server) -> None:
    send(handler, 304, headers={"ETag": '"same"'})


def test_a_304_when_nothing_was_fetched_is_not_up_to_date(
    serve: Serve, installed: Path, capsys: pytest.CaptureFixture
) -> None:
    site = serve(always_304)
    assert main(["update", "--site", site.url]) == 1
    assert "naming no cached copy" in capsys.readouterr().err


def test_the_etag_belongs_to_the_site_that_sent_it(
    serve: Serve, installed: Path, make_entry: Callable[..., dict], capsys: pytest.CaptureFixture
) -> None:
    first = serve(
        lambda handler, state: send(
            handler, 200, site_dump(make_entry(), newer(make_entry, "acme/other-llama")), {"ETag": '"same"'}
        )
    )
    assert main(["update", "--site", first.url]) == 0
    other = serve(always_304)
    assert main(["update", "--site", other.url]) == 1, "another site's 304 does not vouch for this cache"
    assert "up to date" not in capsys.readouterr().err


# --- site serve and site build: nothing outside the site ----------------------------------------------------


@pytest.fixture
def served_site(tmp_path: Path) -> Iterator[tuple[str, int]]:
    from swindex.sitegen.serve import serve_in_thread

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>home</p>", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "index.html").write_text("private", encoding="utf-8")
    (site / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (site / "leaky").symlink_to(tmp_path / "private")
    (site / "home.html").symlink_to(site / "index.html")  # a link within the site is fine
    server, _ = serve_in_thread(site)
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


def get(address: tuple[str, int], path: str) -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/leak.txt", "/leaky/", "/leaky/index.html"])
def test_site_serve_never_follows_a_link_out_of_the_site(served_site: tuple[str, int], path: str) -> None:
    status, body = get(served_site, path)
    assert status == 404 and b"secret" not in body and b"private" not in body
    assert get(served_site, "/home.html") == (200, b"<p>home</p>")


@pytest.mark.parametrize("path", ["/%ff", "/%c0%ae%c0%ae/secret.txt", "/index.html%ff"])
def test_site_serve_answers_bytes_that_are_not_utf8_with_400(
    served_site: tuple[str, int], path: str, capfd: pytest.CaptureFixture
) -> None:
    assert get(served_site, path)[0] == 400
    assert get(served_site, "/")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_site_build_refuses_a_link_out_of_its_assets(
    tmp_path: Path, make_entry: Callable[..., dict], write_registry: Callable[..., Path]
) -> None:
    import shutil

    from swindex.sitegen.build import build_site
    from swindex.sitegen.sources import find_sources

    repo = Path(__file__).resolve().parent.parent
    root = tmp_path / "sources"
    root.mkdir()
    shutil.copy(repo / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copytree(repo / "site", root / "site", ignore=shutil.ignore_patterns("quantization.*"))
    (tmp_path / "id_rsa").write_text("secret", encoding="utf-8")
    (root / "site" / "assets").mkdir(exist_ok=True)
    (root / "site" / "assets" / "key.txt").symlink_to(tmp_path / "id_rsa")
    with pytest.raises(SwindexError, match="key.txt: a link to .*id_rsa, outside"):
        build_site(write_registry(make_entry()), tmp_path / "out", sources=find_sources(root))
    assert not (tmp_path / "out").exists()
