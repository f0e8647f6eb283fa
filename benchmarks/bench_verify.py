"""Verification time: the fast way (swindex verify's default) against the plain way, in the same process.

Model: a Llama of about 330M parameters (hidden 1024, intermediate 4096, 16 layers, vocab 32000), float32 on
CPU, whose quality depends on one planted super weight in layer 1 (tests/fixtures_dependent.py: a first-token
attention sink that only that weight creates). Candidates: the planted weight and the largest-magnitude weight
of every other layer's down projection, 16 in all, one per layer, as a detector's list spreads over depth.

Plain way: for each candidate, zero it in place, run the whole evaluation (every layer and the LM head over
all sequences), restore it; then all zeroed, all zeroed with the super activation restored, and the control.
Fast way (``auto``, swindex verify's default): the same passes, each starting at the first layer it changes,
from the residual stream recorded in the original pass; on an accelerator also several single-weight
ablations stacked into one forward pass. ``fast`` stacks on CPU too (shown for comparison).

All measure the same plan (inputs sampled from the model once, seeded), in rotating order for ROUNDS rounds.
Reported: median seconds of each, the speed-up (plain / auto), the work in full-model passes (layer
evaluations counted per sequence, divided by the layer count; load-independent), whether every
classification is identical, and the largest relative difference of any figure.

    python benchmarks/bench_verify.py [--rounds 3] [--sequences 4] [--length 64] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "verify.json"
CONFIG = {"vocab": 32000, "hidden": 1024, "layers": 16, "heads": 16, "intermediate": 4096}
TARGET_SPEEDUP = 3.0


def build() -> tuple[Any, dict[str, Any]]:
    """The dependent Llama and an entry claiming the planted weight and the largest weight of every other layer."""
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures_dependent import dependent_llama, entry_for, largest_weight

    model, planted = dependent_llama(seed=0, **CONFIG)
    others = [largest_weight(model, f"model.layers.{layer}.mlp.down_proj.weight") for layer in range(CONFIG["layers"]) if layer != planted.layer]
    claims = sorted([planted, *others], key=lambda c: c.layer)
    return model, entry_for(model, *claims, model_id="swindex-bench/dependent-llama")


@contextmanager
def counting(model: Any, into: dict[str, int]) -> Iterator[None]:
    """Count the sequences each layer really computes (a layer handing on the recording computes nothing)."""
    layers = model.model.layers
    handles = []

    def hook(module: Any, args: Any, kwargs: Any) -> None:
        if "forward" not in module.__dict__:
            hidden = args[0] if args else kwargs["hidden_states"]
            into["rows"] += hidden.shape[0]

    for layer in layers:
        handles.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def run(plan: Any, method: str) -> tuple[Any, float, float]:
    from swindex.verification.ablations import measure

    work = {"rows": 0}
    with counting(plan.evaluation.model, work):
        start = time.perf_counter()
        measured = measure(plan.evaluation, plan.ablations, plan.control, method=method)
        seconds = time.perf_counter() - start
    passes = work["rows"] / (len(plan.evaluation.model.model.layers) * plan.evaluation.inputs.input_ids.shape[0])
    return measured, seconds, passes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each way, in rotating order (the machine may be shared)")
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON figures")
    args = parser.parse_args()

    import torch
    import transformers

    from swindex.dates import today
    from swindex.verification.measure import lm_pass
    from swindex.verification.plan import Settings, load, plan
    from swindex.verification.verify import report

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    model, entry = build()
    parameters = sum(p.numel() for p in model.parameters())
    settings = Settings(sequences=args.sequences, length=args.length, batch_size=args.batch_size)
    subject = load(model, entry, settings)
    planned = plan(subject, settings)
    print(f"model: dependent Llama, {parameters / 1e6:.0f}M parameters, float32, CPU x{os.cpu_count()}; "
          f"{len(planned.ablations)} candidates; {args.sequences} sequences of {args.length} tokens, batch {args.batch_size} "
          f"(built and sampled in {time.perf_counter() - started:.0f} s)", flush=True)
    lm_pass(model, planted_first_batch(planned), batch_size=args.batch_size)  # warm-up

    date = today()
    methods = ("plain", "auto", "fast")
    times: dict[str, list[float]] = {m: [] for m in methods}
    reports, work, how = {}, {}, {}
    for r in range(args.rounds):
        for method in methods[r % 3 :] + methods[: r % 3]:  # rotate, so that a change in the machine's load hits all alike
            measured, seconds, passes = run(planned, method)
            times[method].append(seconds)
            reports[method], work[method], how[method] = report(subject, planned, measured, today=date), passes, str(measured.method)
            print(f"  {method:5} {seconds:7.1f} s  {passes:5.2f} full passes", flush=True)

    plain = reports["plain"]
    median = {m: statistics.median(times[m]) for m in methods}
    same = {m: [w.classification for w in reports[m].weights] == [w.classification for w in plain.weights] for m in ("auto", "fast")}
    worst = {}
    for m in ("auto", "fast"):
        pairs = [(a.zeroed, b.zeroed) for a, b in zip(plain.weights, reports[m].weights)]
        pairs += [(getattr(plain, k), getattr(reports[m], k)) for k in ("original", "all_zeroed", "restored_activation", "control")]
        worst[m] = max(abs(b - a) / abs(a) for a, b in pairs if a not in (None, 0.0) and b is not None)
    speedup = median["plain"] / median["auto"]
    fast = reports["auto"]
    counts = {c: sum(w.classification == c for w in fast.weights) for c in ("critical", "significant", "inert")}
    print(f"candidates: {', '.join(f'{w.coordinate} x{w.ratio:.3g} {w.classification}' for w in fast.weights)}")
    for m in ("auto", "fast"):
        print(f"{m}: {how[m]}")
        print(f"  classifications identical to plain: {same[m]} ({counts}); largest relative difference of a figure: {worst[m]:.2e}")
        print(f"  work: plain {work['plain']:.2f} full passes, {m} {work[m]:.2f}: {work['plain'] / work[m]:.2f}x less; "
              f"time: {median['plain'] / median[m]:.2f}x faster")
    print(f"speed-up of the default (plain / auto): {speedup:.2f}x (target >= {TARGET_SPEEDUP})")

    result = {
        "generated": date,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": {"family": "llama", **CONFIG, "parameters": parameters, "dtype": "float32", "builder": "tests/fixtures_dependent.dependent_llama(seed=0)"},
        "cpus": os.cpu_count(),
        "evaluation": {"sequences": args.sequences, "length": args.length, "batch_size": args.batch_size, "text": planned.evaluation.inputs.source},
        "candidates": [w.coordinate for w in fast.weights],
        "classifications": {m: [w.classification for w in reports[m].weights] for m in methods},
        "ratios": {m: [round(w.ratio, 6) for w in reports[m].weights] for m in methods},
        "joint_ratio": round(fast.all_zeroed / fast.original, 3),
        "identical_classifications": same,
        "largest_relative_difference": {m: float(f"{worst[m]:.3g}") for m in worst},
        **{m: {"median_seconds": round(median[m], 2), "runs": len(times[m]), "full_passes": round(work[m], 2), "method": how[m]} for m in methods},
        "work_ratio": {m: round(work["plain"] / work[m], 2) for m in ("auto", "fast")},
        "speedup": {m: round(median["plain"] / median[m], 2) for m in ("auto", "fast")},
        "target_speedup": TARGET_SPEEDUP,
        "met": all(same.values()) and speedup >= TARGET_SPEEDUP,
        "note": "all ways in one process on the same plan, in rotating order; a full pass is every layer once over all sequences (every way also runs the LM head on every pass)",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


def planted_first_batch(planned: Any) -> Any:
    """The plan's first batch of sequences as Inputs (for a warm-up forward pass)."""
    from swindex.verification.inputs import Inputs

    inputs = planned.evaluation.inputs
    return Inputs(inputs.input_ids[: planned.evaluation.batch_size], None, inputs.source)


if __name__ == "__main__":
    raise SystemExit(main())
