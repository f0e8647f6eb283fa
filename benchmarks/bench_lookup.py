"""Import + first lookup, and lookup / validation over a synthetic registry of 10,000 entries.

Each figure is reported next to a baseline measured in the same run:
- import + first lookup against a bare `python -c pass` start-up;
- a lookup against a plain dict access on the same keys;
- validating 10,000 entries against loading (parsing only) the same 10,000 files.
Targets on the development machine: import + first lookup under 30 ms from an installed swindex (measured on a copy
of the package laid out as a wheel installs it, with its packaged index); validating 10,000 entries under 10 s.

    python benchmarks/bench_lookup.py [--entries 10000] [--out benchmarks/results/lookup.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from swindex._lookup import clear_cache, lookup
from swindex.registry import build_index, read_index
from swindex.validate import entry_files, validate_registry
from swindex.yamlio import dump_yaml, load_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import BASE_ENTRY  # noqa: E402


def _cpu_times(command: list[str], runs: int = 7, **options: Any) -> list[float]:
    """The CPU times (user + system) of ``runs`` runs of a child process: CPU time, unlike wall time, does not count
    the waits of a machine shared with other work. Baseline and subject are interleaved by the caller."""
    import resource

    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, capture_output=True, **options)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return times


def installed_copy(into: Path) -> Path:
    """The swindex package as a wheel installs it: its files without the checkout around them, plus the packaged
    index generated from registry/ (what hatch_build.py does) and its bytecode compiled; the folder to put on
    PYTHONPATH."""
    import shutil

    import swindex

    package = Path(swindex.__file__).parent
    shutil.copytree(package, into / "swindex", ignore=shutil.ignore_patterns("__pycache__", "registry.json"))
    build_index(package.parent / "registry", into / "swindex" / "data" / "registry.json")
    import compileall

    compileall.compile_dir(into / "swindex", quiet=1)  # as pip does on install (whatever PYTHONDONTWRITEBYTECODE says)
    return into


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
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "lookup.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        site = installed_copy(Path(tmp))
        environment = {**os.environ, "PYTHONPATH": str(site), "SWINDEX_CACHE_DIR": str(Path(tmp) / "no-cache")}
        environment.pop("SWINDEX_REGISTRY", None)
        probe = "from swindex import lookup, registry_source; assert registry_source().kind == 'packaged'"
        subprocess.run([sys.executable, "-c", probe], check=True, env=environment, cwd=tmp)
        code = "from swindex import lookup; lookup('huggyllama/llama-7b')"
        bares: list[float] = []
        firsts: list[float] = []
        for _ in range(7):
            bares += _cpu_times([sys.executable, "-c", "pass"], 3, env=environment, cwd=tmp)
            firsts += _cpu_times([sys.executable, "-c", code], 3, env=environment, cwd=tmp)
    # the least time is the figure (start-up noise only ever adds time); the median says how steady the machine was
    bare, first = min(bares), min(firsts)
    print(
        f"interpreter start-up (baseline)      {bare * 1000:7.1f} ms CPU (median {statistics.median(bares) * 1000:.1f})"
    )
    print(
        f"import swindex + first lookup        {first * 1000:7.1f} ms CPU "
        f"(median {statistics.median(firsts) * 1000:.1f}; {first / bare:.2f}x start-up; "
        f"swindex's own share {(first - bare) * 1000:.1f} ms; target < 30 ms, from the packaged index as installed)"
    )
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "runs": len(firsts),
        "startup_ms": round(bare * 1000, 1),
        "startup_median_ms": round(statistics.median(bares) * 1000, 1),
        "import_and_first_lookup_ms": round(first * 1000, 1),
        "import_and_first_lookup_median_ms": round(statistics.median(firsts) * 1000, 1),
        "ratio_to_startup": round(first / bare, 2),
        "target_ms": 30,
        "note": "CPU time (user + system) of child processes, least of the runs; from a copy laid out as a wheel "
        "installs swindex, with its packaged index",
    }

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
        print(
            f"validate {len(files)} entries              {validate:7.2f} s  "
            f"({validate / parse:.2f}x parsing; target < 10 s)"
        )
        results.update(entries=len(files), parse_s=round(parse, 2), validate_s=round(validate, 2))

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
        print(
            f"lookup in {len(files)} entries (warm)       {per_lookup * 1e6:7.1f} us  "
            f"({per_lookup / per_dict:.1f}x a plain dict access)"
        )
        results.update(
            warm_lookup_us=round(per_lookup * 1e6, 1), warm_lookup_dict_ratio=round(per_lookup / per_dict, 1)
        )
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
