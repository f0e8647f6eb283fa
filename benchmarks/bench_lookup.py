"""Import + first lookup, and lookup / validation over a synthetic registry of 10,000 entries.

Each figure is reported next to a baseline measured in the same run:
- import + first lookup against a bare `python -c pass` start-up;
- a lookup against a plain dict access on the same keys;
- validating 10,000 entries against loading (parsing only) the same 10,000 files.
Targets on the development machine: import + first lookup under 100 ms; validating 10,000 entries under 10 s.

    python benchmarks/bench_lookup.py [--entries 10000]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swindex.lookup import clear_cache, lookup
from swindex.registry import build_index, read_index
from swindex.validate import entry_files, validate_registry
from swindex.yamlio import dump_yaml, load_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import BASE_ENTRY  # noqa: E402


def _best_of(command: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic_registry(root: Path, count: int) -> None:
    for i in range(count):
        entry = copy.deepcopy(BASE_ENTRY)
        entry["id"] = f"org{i % 100}/model-{i}"
        entry["aliases"] = [f"model-{i}-alias"]
        entry["claims"][0]["row"] = i % 64
        entry["claims"][0]["index"] = [i % 64, 7]
        path = root / f"{entry['id']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(entry), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()

    bare = _best_of([sys.executable, "-c", "pass"])
    first = _best_of([sys.executable, "-c", "from swindex import lookup; lookup('huggyllama/llama-7b')"])
    print(f"interpreter start-up (baseline)      {bare * 1000:7.1f} ms")
    print(f"import swindex + first lookup        {first * 1000:7.1f} ms  ({first / bare:.2f}x start-up; swindex's own share {(first - bare) * 1000:.1f} ms; target < 100 ms)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "registry"
        synthetic_registry(root, args.entries)
        files = entry_files(root)

        start = time.perf_counter()
        for path in files:
            load_yaml(path)
        parse = time.perf_counter() - start

        start = time.perf_counter()
        problems = validate_registry(root)
        validate = time.perf_counter() - start
        assert not problems, problems[:3]
        print(f"parse {len(files)} entries (baseline)      {parse:7.2f} s")
        print(f"validate {len(files)} entries              {validate:7.2f} s  ({validate / parse:.2f}x parsing; target < 10 s)")

        index = Path(tmp) / "index.json"
        start = time.perf_counter()
        build_index(root, index)
        print(f"build index of {len(files)} entries        {time.perf_counter() - start:7.2f} s")
        start = time.perf_counter()
        entries = read_index(index)
        print(f"read index of {len(files)} entries         {time.perf_counter() - start:7.2f} s")

        names = [e.id for e in entries]
        clear_cache()
        lookup(names[0], registry=root)
        plain = {n.casefold(): n for n in names}
        rounds = 20
        t_lookup, t_dict = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            for name in names[:1000]:
                lookup(name.upper(), registry=root)
            t_lookup.append(time.perf_counter() - start)
            start = time.perf_counter()
            for name in names[:1000]:
                plain[name.upper().casefold()]
            t_dict.append(time.perf_counter() - start)
        per_lookup = statistics.median(t_lookup) / 1000
        per_dict = statistics.median(t_dict) / 1000
        print(f"lookup in {len(files)} entries (warm)       {per_lookup * 1e6:7.1f} us  ({per_lookup / per_dict:.1f}x a plain dict access)")


if __name__ == "__main__":
    main()
