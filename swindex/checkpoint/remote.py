"""A model repository on the Hugging Face Hub, read with HTTP range requests through ``huggingface_hub``.

``ORG/NAME[@REVISION]`` is resolved to a commit once (so every read sees the same files); then only the
shard index, config.json, the start of the model card, each needed shard's header and the bytes of each
super weight's line are fetched: well under a megabyte for a model of any size. The endpoint and the
token are huggingface_hub's own (``HF_ENDPOINT``, ``HF_TOKEN`` or a saved login).

Every request has a whole deadline (``swindex.limits.REQUEST_DEADLINE_S``, start to last byte), reads at most
``MAX_REPLY_BYTES`` of any reply after decompression, and follows redirects one hop at a time, each checked
to be https (or plain http to this machine).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .. import limits
from ..constants import GGUF_SUFFIX
from ..errors import shown
from .errors import CheckpointError
from .locate import (
    ADAPTER_FILE,
    CARD_BYTES,
    INDEX_FILE,
    SINGLE_FILE,
    Checkpoint,
    front_matter,
    parse_json,
    shard_map,
    stray_note,
)
from .source import Transfer, check_range

REPO_SPEC = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})(?:@(?P<revision>[\w./-]{1,200}))?$")


def is_repo_spec(text: str) -> bool:
    """Whether ``text`` reads as ORG/NAME[@REVISION] (check looks for a local path of that name first)."""
    return bool(REPO_SPEC.match(text))


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository at a fixed commit; each read is one ranged GET of exactly the bytes asked for."""

    name: str
    url: str
    size: int
    transfer: Transfer = field(repr=False)

    @classmethod
    def open(cls, name: str, url: str, transfer: Transfer) -> "RemoteFile":
        """Learn the file's size from the answer to a ranged read of its first byte."""
        _, total = _ranged_get(url, 0, 1, name, transfer)
        if total is None:
            raise CheckpointError(
                name, "the server did not say the file's size (no Content-Range): it does not serve byte ranges"
            )
        return cls(name, url, total, transfer)

    def read(self, offset: int, length: int) -> bytes:
        check_range(self, offset, length)
        if length == 0:
            return b""
        data, _ = _ranged_get(self.url, offset, length, self.name, self.transfer)
        return data


@contextmanager
def _request(url: str, headers: dict[str, str], name: str) -> Iterator[Any]:
    """A streamed GET of ``url`` within the whole-request deadline, following redirects one checked hop at a time."""
    from huggingface_hub import get_session

    session = get_session()
    deadline = time.monotonic() + limits.REQUEST_DEADLINE_S
    request = session.build_request("GET", url, headers=headers, timeout=limits.REQUEST_DEADLINE_S)
    for _ in range(limits.MAX_REDIRECTS + 1):
        response = session.send(request, stream=True, follow_redirects=False)
        try:
            if not response.is_redirect:
                yield _Timed(response, deadline, name)
                return
            following = response.next_request
            hop = str(following.url) if following is not None else "nowhere"
            if following is None or not limits.allowed_url(hop, str(response.request.url)):
                raise CheckpointError(
                    name,
                    f"the server redirected to {shown(hop)}: check follows https, or plain http only on this machine",
                )
            following.extensions["timeout"] = _left(deadline, name)
            request = following
        finally:
            response.close()
    raise CheckpointError(name, f"the server redirected more than {limits.MAX_REDIRECTS} times")


def _left(deadline: float, name: str) -> dict[str, float]:
    left = deadline - time.monotonic()
    if left <= 0:
        raise CheckpointError(
            name, f"the server took over {limits.REQUEST_DEADLINE_S:g} s to answer (each request has a whole deadline)"
        )
    return {"connect": left, "read": left, "write": left, "pool": left}


@dataclass(frozen=True)
class _Timed:
    """A response whose body is read in chunks, within the request's deadline and a byte cap (after decompression)."""

    response: Any
    deadline: float
    name: str

    def body(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body; the connection is cut when the deadline passes mid-read."""
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        chunks, received = [], 0
        try:
            with limits.cut_off_at(self.deadline, sock.fileno() if sock is not None else None):
                for chunk in self.response.iter_bytes():
                    _left(self.deadline, self.name)
                    chunks.append(chunk[: limit - received])
                    received += len(chunks[-1])
                    if received >= limit:
                        break
        except Exception:
            _left(self.deadline, self.name)  # cut off at the deadline: say so, not what the cut looked like
            raise
        _left(self.deadline, self.name)  # a cut can also look like the end of a reply of no stated length
        return b"".join(chunks)

    def raise_for_status(self) -> None:
        """Hub errors as huggingface_hub names them, built from at most MAX_REPLY_BYTES of the error's body."""
        from huggingface_hub.utils import hf_raise_for_status

        if self.response.status_code < 400:
            return
        body = self.body(limits.MAX_REPLY_BYTES)
        response = self.response
        read = type(response)(response.status_code, headers=response.headers, content=body, request=response.request)
        hf_raise_for_status(read)


def _hub_headers() -> dict[str, str]:
    """The token huggingface_hub would send (HF_TOKEN or a saved login) and swindex's user agent.

    Not ``build_hf_headers``: it first fetches a list of agent harnesses from the endpoint, a reply read whole,
    outside every deadline and cap here, so a hostile endpoint could exhaust memory before the first request."""
    from huggingface_hub import get_token

    from ..version import version

    headers = {"User-Agent": f"swindex/{version()}"}
    token = get_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _ranged_get(url: str, offset: int, length: int, name: str, transfer: Transfer) -> tuple[bytes, int | None]:
    """Bytes [offset, offset + length) of ``url`` and the file's total size; never reads more than asked."""
    headers = {**_hub_headers(), "Range": f"bytes={offset}-{offset + length - 1}", "Accept-Encoding": "identity"}
    try:
        with _request(url, headers, name) as reply:
            if reply.response.status_code == 416:
                raise CheckpointError(name, f"bytes {offset}..{offset + length} lie past the end of the file")
            reply.raise_for_status()
            if reply.response.status_code != 206:
                raise CheckpointError(
                    name,
                    f"the server answered a byte-range request with HTTP {reply.response.status_code} instead of 206: "
                    "it does not serve ranges, and check will not download the whole file",
                )
            data = reply.body(length)
            total = _total_size(reply.response.headers.get("Content-Range"))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - network and hub errors arrive as many types; each becomes one line naming the file
        raise CheckpointError(name, _describe(exc)) from None
    transfer.add(len(data))
    if len(data) != length:
        raise CheckpointError(name, f"the server sent {len(data)} of the {length} bytes asked for at {offset}")
    return data, total


def _model_info(
    spec: str, repo: str, revision: str | None, endpoint: str | None
) -> tuple[str | None, set[str], dict[str, str]]:
    """(commit, file names, LFS sha256 by file) of a repository, from a model-info reply read within MAX_REPLY_BYTES
    (``blobs=true`` asks the Hub for each file's LFS record, as huggingface_hub's ``files_metadata`` does)."""
    from urllib.parse import quote

    from huggingface_hub import HfApi

    base = HfApi(endpoint=endpoint).endpoint.rstrip("/")
    url = (
        f"{base}/api/models/{repo}"
        + (f"/revision/{quote(revision, safe='')}" if revision is not None else "")
        + "?blobs=true"
    )
    try:
        with _request(url, _hub_headers(), spec) as reply:
            reply.raise_for_status()
            body = reply.body(limits.MAX_REPLY_BYTES + 1)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - as in _ranged_get: one line, naming the repository
        raise CheckpointError(spec, _describe(exc)) from None
    if len(body) > limits.MAX_REPLY_BYTES:
        raise CheckpointError(spec, f"the model-info reply is over {limits.MAX_REPLY_BYTES:,} bytes; refusing it")
    try:
        info = limits.load_json(body, "the model-info reply")
    except limits.ParseError as exc:
        raise CheckpointError(spec, f"{exc.where} {exc.reason}") from None
    siblings = info.get("siblings") if isinstance(info, dict) else None
    if not isinstance(siblings, list):
        raise CheckpointError(spec, "the model-info reply lists no files (no siblings): is the endpoint a Hub?")
    names = {s["rfilename"] for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str)}
    lfs = {
        s["rfilename"]: s["lfs"]["sha256"]
        for s in siblings
        if isinstance(s, dict)
        and isinstance(s.get("rfilename"), str)
        and isinstance(s.get("lfs"), dict)
        and isinstance(s["lfs"].get("sha256"), str)
    }
    sha = info.get("sha")
    return (sha if isinstance(sha, str) else None), names, lfs


def _total_size(content_range: str | None) -> int | None:
    match = re.match(r"^bytes \d+-\d+/(\d+)$", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _describe(exc: Exception) -> str:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set, and a remote check needs the network: unset it, or check a local copy"
    if isinstance(exc, GatedRepoError):
        return "the repository is gated: accept its terms on the Hub and log in (`hf auth login` or HF_TOKEN)"
    if isinstance(exc, RevisionNotFoundError):
        return "no such revision in the repository"
    if isinstance(exc, RepositoryNotFoundError):
        return "no such model repository (or it is private: log in with `hf auth login` or set HF_TOKEN)"
    if isinstance(exc, (EntryNotFoundError, RemoteEntryNotFoundError)):
        return "no such file in the repository"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'request failed'}"


def open_remote(
    spec: str, transfer: Transfer, *, endpoint: str | None = None, revision: str | None = None, file: str | None = None
) -> Checkpoint:
    """A repository's safetensors checkpoint at one commit, with its config and model card, or its GGUF ``file``;
    nothing large is fetched (the Hub's LFS sha256 of a one-file checkpoint stands in for hashing it)."""
    from huggingface_hub import hf_hub_url

    match = REPO_SPEC.match(spec)
    if not match:
        raise CheckpointError(spec, "is neither a local path nor a model id written ORG/NAME[@REVISION]")
    repo = match["repo"]
    if revision is not None and match["revision"] is not None and revision != match["revision"]:
        raise CheckpointError(spec, f"names revision {match['revision']} and --revision {revision}: give one")
    revision = revision or match["revision"]
    sha, names, lfs_sha256 = _model_info(spec, repo, revision, endpoint)
    sha = sha or revision or "main"

    def url(name: str) -> str:
        return hf_hub_url(repo, name, revision=sha, endpoint=endpoint)

    def open_file(name: str) -> RemoteFile:
        return RemoteFile.open(name, url(name), transfer)

    def small(name: str, limit: int | None = None) -> bytes:
        """A whole small file, or its first ``limit`` bytes."""
        source = open_file(name)
        if limit is None and source.size > limits.MAX_SMALL_FILE_BYTES:
            raise CheckpointError(
                f"{spec}:{name}", f"is {source.size:,} bytes; a config or shard index is never that large"
            )
        return source.read(0, source.size if limit is None else min(source.size, limit))

    location = f"{repo}@{sha}"
    if file is not None:
        if not file.endswith(GGUF_SUFFIX) or file not in names:
            present = sorted(n for n in names if n.endswith(GGUF_SUFFIX))[:5]
            listed = f" (its GGUF files: {', '.join(present)})" if present else ""
            raise CheckpointError(spec, f"has no GGUF file {file!r}{listed}")
        return Checkpoint(
            f"{location}/{file}", "gguf", (file,), open_file, transfer, revision=sha, file_sha256=lfs_sha256.get(file)
        )
    config = parse_json(small("config.json"), f"{spec}:config.json") if "config.json" in names else None
    card = front_matter(small("README.md", CARD_BYTES)) if "README.md" in names else None
    common: dict[str, Any] = {
        "open_file": open_file,
        "transfer": transfer,
        "config": config,
        "card": card,
        "revision": sha,
    }
    present = sorted(name for name in names if name.endswith(".safetensors") and "/" not in name)
    if SINGLE_FILE in names:
        notes = stray_note(present, (SINGLE_FILE,))
        return Checkpoint(
            location, "safetensors", (SINGLE_FILE,), notes=notes, file_sha256=lfs_sha256.get(SINGLE_FILE), **common
        )
    if INDEX_FILE in names:
        weight_map = shard_map(parse_json(small(INDEX_FILE), f"{spec}:{INDEX_FILE}"), f"{spec}:{INDEX_FILE}")
        shards = tuple(sorted(set(weight_map.values())))
        return Checkpoint(
            location, "safetensors", shards, weight_map=weight_map, notes=stray_note(present, shards), **common
        )
    if ADAPTER_FILE in names:  # a PEFT adapter, read as peft reads it
        return Checkpoint(
            location, "safetensors", (ADAPTER_FILE,), notes=stray_note(present, (ADAPTER_FILE,)), **common
        )
    if present:
        raise CheckpointError(
            spec,
            f"holds {', '.join(present[:4])} but neither {SINGLE_FILE} nor {INDEX_FILE}, so "
            "transformers loads none of them",
        )
    ggufs = sorted(name for name in names if name.endswith(GGUF_SUFFIX))
    if ggufs:
        listed = f"{', '.join(ggufs[:3])}{', ...' if len(ggufs) > 3 else ''}"
        raise CheckpointError(
            spec, f"holds GGUF files only ({listed}); name the one to check: swindex check REPO --file NAME.gguf"
        )
    raise CheckpointError(spec, "holds no safetensors weights at its top level")
