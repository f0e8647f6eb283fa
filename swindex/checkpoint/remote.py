"""A model repository on the Hugging Face Hub, read with HTTP range requests through ``huggingface_hub``.

``ORG/NAME[@REVISION]`` is resolved to a commit once (so every read sees the same files); then only the
shard index, config.json, the start of the model card, each needed shard's header and the bytes of each
super weight's line are fetched: well under a megabyte for a model of any size. The endpoint and the
token are huggingface_hub's own (``HF_ENDPOINT``, ``HF_TOKEN`` or a saved login).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import CheckpointError
from .locate import CARD_BYTES, INDEX_FILE, MAX_SMALL_FILE, Checkpoint, front_matter, parse_json, shard_map
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
            raise CheckpointError(name, "the server did not say the file's size (no Content-Range): it does not serve byte ranges")
        return cls(name, url, total, transfer)

    def read(self, offset: int, length: int) -> bytes:
        check_range(self, offset, length)
        if length == 0:
            return b""
        data, _ = _ranged_get(self.url, offset, length, self.name, self.transfer)
        return data


def _ranged_get(url: str, offset: int, length: int, name: str, transfer: Transfer) -> tuple[bytes, int | None]:
    """Bytes [offset, offset + length) of ``url`` and the file's total size; never reads more than asked."""
    from huggingface_hub import get_session
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    headers = {**build_hf_headers(), "Range": f"bytes={offset}-{offset + length - 1}", "Accept-Encoding": "identity"}
    try:
        with get_session().stream("GET", url, headers=headers, timeout=60) as response:
            if response.status_code == 416:
                raise CheckpointError(name, f"bytes {offset}..{offset + length} lie past the end of the file")
            if response.status_code >= 400:
                response.read()  # an error's small body names it; hub errors are built from it
            hf_raise_for_status(response)
            if response.status_code != 206:
                raise CheckpointError(name, f"the server answered a byte-range request with HTTP {response.status_code} instead of 206: it does not serve ranges, and check will not download the whole file")
            chunks, received = [], 0
            for chunk in response.iter_bytes():
                chunks.append(chunk[: length - received])
                received += len(chunks[-1])
                if received >= length:
                    break
            total = _total_size(response.headers.get("Content-Range"))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - network and hub errors arrive as many types; each becomes one line naming the file
        raise CheckpointError(name, _describe(exc)) from None
    data = b"".join(chunks)
    transfer.add(len(data))
    if len(data) != length:
        raise CheckpointError(name, f"the server sent {len(data)} of the {length} bytes asked for at {offset}")
    return data, total


def _total_size(content_range: str | None) -> int | None:
    match = re.match(r"^bytes \d+-\d+/(\d+)$", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _describe(exc: Exception) -> str:
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, OfflineModeIsEnabled, RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

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


def open_remote(spec: str, transfer: Transfer, *, endpoint: str | None = None) -> Checkpoint:
    """A repository's safetensors checkpoint at one commit, with its config and model card; nothing large is fetched."""
    from huggingface_hub import HfApi, hf_hub_url

    match = REPO_SPEC.match(spec)
    if not match:
        raise CheckpointError(spec, "is neither a local path nor a model id written ORG/NAME[@REVISION]")
    repo, revision = match["repo"], match["revision"]
    try:
        info = HfApi(endpoint=endpoint).model_info(repo, revision=revision, timeout=60)
    except Exception as exc:  # noqa: BLE001 - as in _ranged_get: one line, naming the repository
        raise CheckpointError(spec, _describe(exc)) from None
    sha = info.sha or revision or "main"
    names = {s.rfilename for s in info.siblings or ()}

    def url(name: str) -> str:
        return hf_hub_url(repo, name, revision=sha, endpoint=endpoint)

    def open_file(name: str) -> RemoteFile:
        return RemoteFile.open(name, url(name), transfer)

    def small(name: str, limit: int | None = None) -> bytes:
        """A whole small file, or its first ``limit`` bytes."""
        source = open_file(name)
        if limit is None and source.size > MAX_SMALL_FILE:
            raise CheckpointError(f"{spec}:{name}", f"is {source.size:,} bytes; a config or shard index is never that large")
        return source.read(0, source.size if limit is None else min(source.size, limit))

    location = f"{repo}@{sha}"
    config = parse_json(small("config.json"), f"{spec}:config.json") if "config.json" in names else None
    card = front_matter(small("README.md", CARD_BYTES)) if "README.md" in names else None
    common: dict[str, Any] = {"open_file": open_file, "transfer": transfer, "config": config, "card": card, "revision": sha}
    if INDEX_FILE in names:
        weight_map = shard_map(parse_json(small(INDEX_FILE), f"{spec}:{INDEX_FILE}"), f"{spec}:{INDEX_FILE}")
        return Checkpoint(location, "safetensors", tuple(sorted(set(weight_map.values()))), weight_map=weight_map, **common)
    shards = sorted(name for name in names if name.endswith(".safetensors") and "/" not in name)
    if shards:
        return Checkpoint(location, "safetensors", tuple(shards), **common)
    ggufs = sorted(name for name in names if name.endswith(".gguf"))
    if ggufs:
        raise CheckpointError(spec, f"holds GGUF files only ({', '.join(ggufs[:3])}{', ...' if len(ggufs) > 3 else ''}); a remote check reads safetensors: download the GGUF you run and check that file")
    raise CheckpointError(spec, "holds no safetensors weights at its top level")
