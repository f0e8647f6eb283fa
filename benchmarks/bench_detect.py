"""Detection work, time and peak memory: swindex.detect against a plain implementation of the paper's procedure.

Model: a planted Llama of about 430M parameters (hidden 1024, intermediate 4096, 24 layers, vocab 32000),
float32 on CPU, with super weights planted in layers 2, 6, 12 and 20 (inputs 80, above the paper's
fixed threshold of 50 so that both methods find the same four).

Plain procedure (the paper's, as usually implemented): every pass runs the whole model (LM head included)
with hooks that keep each down projection's whole input and output, then takes per layer the largest
|input| and |output|; the first layer where both exceed 50 gives the weight (row = output channel,
column = input channel); it is zeroed in place and the whole model is run again, until no layer qualifies;
the weights are restored at the end.

Each method runs in its own processes, alternating for ROUNDS rounds (each loads the saved model, runs one
warm-up forward, then REPEATS timed detections) while a thread samples the process's resident memory every
2 ms. Reported, all from the same run: the work in full-model passes (layer evaluations over the number
of layers; the plain procedure runs every layer in every pass), median time, speed-up (plain / swindex),
and the highest peak resident memory during detection, counted from before the model was loaded, over the
model's parameter bytes. Targets: swindex at most 1.5 full passes and at least 2.5x faster. Writes JSON
(default benchmarks/results/detect.json).

    python benchmarks/bench_detect.py [--rounds 3] [--repeats 1] [--dir /tmp/swindex-bench-llama] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PLANTS = ((2, 100, 700), (6, 200, 1500), (12, 300, 2500), (20, 400, 3500))  # (layer, row, column)
CONFIG = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_layers": 24,
    "vocab_size": 32000,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
}
PAPER_THRESHOLD = 50.0
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "detect.json"
TARGET_PASSES, TARGET_SPEEDUP = 1.5, 2.5


def build(directory: Path) -> None:
    """Build and save the planted model once (reused across runs when the directory exists)."""
    sys.path.insert(0, str(REPO / "tests"))
    from planted import Plant, build_planted, save_planted

    model, planted = build_planted(
        "llama", plants=tuple(Plant(layer, r, c, input=80.0, weight=-6.0) for layer, r, c in PLANTS), seed=0, **CONFIG
    )
    save_planted(model, directory)
    (directory / "planted.json").write_text(json.dumps([p.coordinate for p in planted]))


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakSampler:
    """Samples resident memory in a thread; `peak` is the largest value seen while running."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self.peak = rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def plain_detect(model: Any, input_ids: Any) -> list[str]:
    """The paper's procedure: whole activations captured, whole model rerun, one weight per pass."""
    import torch

    downs = [(i, layer.mlp.down_proj) for i, layer in enumerate(model.model.layers)]
    names = {id(p): n for n, p in model.named_parameters()}
    saved: list[tuple[torch.Tensor, tuple[int, int], torch.Tensor]] = []
    found: list[str] = []
    passes = 0
    try:
        while True:
            passes += 1
            captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
            handles = [
                m.register_forward_hook(
                    lambda _m, a, o, i=i: captured.__setitem__(i, (a[0].detach().clone(), o.detach().clone()))
                )
                for i, m in downs
            ]
            try:
                with torch.no_grad():
                    model(input_ids=input_ids)
            finally:
                for h in handles:
                    h.remove()
            hit = None
            for i, _ in downs:
                x, y = (t.reshape(-1, t.shape[-1]) for t in captured[i])
                in_max, in_at = x.abs().max(), int(x.abs().argmax())
                out_max, out_at = y.abs().max(), int(y.abs().argmax())
                if in_max > PAPER_THRESHOLD and out_max > PAPER_THRESHOLD:
                    hit = (i, out_at % y.shape[1], in_at % x.shape[1])
                    break
            del captured
            if hit is None:
                return found, passes
            layer, row, column = hit
            weight = downs[layer][1].weight
            saved.append((weight, (row, column), weight.data[row, column].clone()))
            weight.data[row, column] = 0
            found.append(f"{names[id(weight)]}[{row}, {column}]")
    finally:
        for weight, index, value in reversed(saved):
            weight.data[index] = value


def child(method: str, directory: Path, repeats: int) -> None:
    import torch

    from swindex.detection import default_input_ids, detect

    torch.set_num_threads(os.cpu_count() or 1)
    before_load = rss()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    ids = default_input_ids(model.config)
    batch = torch.tensor([ids])
    with torch.no_grad():
        model(input_ids=batch)  # warm-up
    times, found, full_passes = [], [], 0.0
    layers = model.config.num_hidden_layers
    with PeakSampler() as sampler:
        for _ in range(repeats):
            start = time.perf_counter()
            if method == "swindex":
                result = detect(model, input_ids=ids)
                found, full_passes = [w.coordinate for w in result.candidates], result.layer_evaluations / layers
            else:
                found, passes = plain_detect(model, batch)
                full_passes = float(passes)  # every pass runs all layers (and the LM head)
            times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "method": method,
                "times": times,
                "found": found,
                "full_passes": full_passes,
                "model_bytes": model_bytes,
                "parameters": sum(p.numel() for p in model.parameters()),
                "peak_over_model": (sampler.peak - before_load) / model_bytes,
                "extra_mb": (sampler.peak - before_load - model_bytes) / 2**20,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per method, alternating")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per process")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/swindex-bench-llama"))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON figures")
    parser.add_argument("--child", choices=("swindex", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir, args.repeats)
        return 0
    if not (args.dir / "planted.json").is_file():
        print(f"building the planted model in {args.dir} ...", file=sys.stderr)
        build(args.dir)
    planted = json.loads((args.dir / "planted.json").read_text())
    results: dict[str, dict] = {}
    for _ in range(args.rounds):  # alternate the methods so that load from other processes hits both alike
        for method in ("plain", "swindex"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", method, "--dir", str(args.dir), "--repeats", str(args.repeats)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            run = json.loads(out.stdout.strip().splitlines()[-1])
            if method in results:
                results[method]["times"] += run["times"]
                results[method]["peak_over_model"] = max(results[method]["peak_over_model"], run["peak_over_model"])
                results[method]["extra_mb"] = max(results[method]["extra_mb"], run["extra_mb"])
            else:
                results[method] = run
    plain, ours = results["plain"], results["swindex"]
    speedup = statistics.median(plain["times"]) / statistics.median(ours["times"])
    print(
        f"model: planted Llama, {ours['parameters'] / 1e6:.0f}M parameters, {ours['model_bytes'] / 2**30:.2f} GiB "
        f"float32, CPU x{os.cpu_count()}"
    )
    print(f"planted: {', '.join(planted)}")
    for r in (plain, ours):
        print(
            f"{r['method']:8} {r['full_passes']:5.2f} full passes; median {statistics.median(r['times']):6.2f} s over "
            f"{len(r['times'])} runs; peak memory {r['peak_over_model']:.3f} x model ({r['extra_mb']:+.0f} MiB); found "
            f"{'all planted' if r['found'] == planted else r['found']}"
        )
    print(
        f"work: swindex {ours['full_passes']:.2f} full passes (target <= {TARGET_PASSES}), plain "
        f"{plain['full_passes']:.2f}: {plain['full_passes'] / ours['full_passes']:.2f}x less"
    )
    print(f"speed-up (plain / swindex): {speedup:.2f}x (target >= {TARGET_SPEEDUP})")
    figures = {
        "generated": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "model": {
            "family": "llama",
            **CONFIG,
            "parameters": ours["parameters"],
            "bytes": ours["model_bytes"],
            "dtype": "float32",
        },
        "planted": planted,
        "cpus": os.cpu_count(),
        "runs": len(ours["times"]),
        "swindex": {
            "full_passes": round(ours["full_passes"], 3),
            "median_seconds": round(statistics.median(ours["times"]), 3),
            "peak_over_model": round(ours["peak_over_model"], 3),
            "found_all": ours["found"] == planted,
        },
        "plain": {
            "full_passes": round(plain["full_passes"], 3),
            "median_seconds": round(statistics.median(plain["times"]), 3),
            "peak_over_model": round(plain["peak_over_model"], 3),
            "found_all": plain["found"] == planted,
        },
        "work_ratio": round(plain["full_passes"] / ours["full_passes"], 2),
        "speedup": round(speedup, 2),
        "targets": {"full_passes_at_most": TARGET_PASSES, "speedup_at_least": TARGET_SPEEDUP},
        "met": ours["full_passes"] <= TARGET_PASSES and speedup >= TARGET_SPEEDUP and ours["found"] == planted,
        "note": "both methods in separate processes, alternating; a full pass is every layer once (the plain "
        "procedure also runs the LM head)",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
