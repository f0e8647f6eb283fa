"""Detection time and peak memory: swindex.detect against a plain implementation of the paper's procedure.

Model: a planted Llama of about 470M parameters (hidden 1024, intermediate 4096, 24 layers, vocab 32000),
float32 on CPU, with super weights planted in layers 2, 6, 12 and 20 (inputs 80, above the paper's
fixed threshold of 50 so that both methods find the same four).

Plain procedure (the paper's, as usually implemented): every pass runs the whole model (LM head included)
with hooks that keep each down projection's whole input and output, then takes per layer the largest
|input| and |output|; the first layer where both exceed 50 gives the weight (row = output channel,
column = input channel); it is zeroed in place and the whole model is run again, until no layer qualifies;
the weights are restored at the end.

Each method runs in its own processes, alternating for ROUNDS rounds (each loads the saved model, runs one
warm-up forward, then REPEATS timed detections) while a thread samples the process's resident memory every
2 ms. Reported: median time, speed-up (plain / swindex), and the highest peak resident memory during
detection, counted from before the model was loaded, over the model's parameter bytes.

    python benchmarks/bench_detect.py [--rounds 3] [--repeats 1] [--dir /tmp/swindex-bench-llama]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PLANTS = ((2, 100, 700), (6, 200, 1500), (12, 300, 2500), (20, 400, 3500))  # (layer, row, column)
CONFIG = {"hidden_size": 1024, "intermediate_size": 4096, "num_layers": 24, "vocab_size": 32000, "num_attention_heads": 16, "num_key_value_heads": 4, "max_position_embeddings": 512}
PAPER_THRESHOLD = 50.0


def build(directory: Path) -> None:
    """Build and save the planted model once (reused across runs when the directory exists)."""
    sys.path.insert(0, str(REPO / "tests"))
    from planted import Plant, build_planted, save_planted

    model, planted = build_planted("llama", plants=tuple(Plant(layer, r, c, input=80.0, weight=-6.0) for layer, r, c in PLANTS), seed=0, **CONFIG)
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
    try:
        while True:
            captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
            handles = [m.register_forward_hook(lambda _m, a, o, i=i: captured.__setitem__(i, (a[0].detach().clone(), o.detach().clone()))) for i, m in downs]
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
                return found
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
    times, found = [], []
    with PeakSampler() as sampler:
        for _ in range(repeats):
            start = time.perf_counter()
            if method == "swindex":
                found = [w.coordinate for w in detect(model, input_ids=ids).super_weights]
            else:
                found = plain_detect(model, batch)
            times.append(time.perf_counter() - start)
    print(json.dumps({
        "method": method, "times": times, "found": found, "model_bytes": model_bytes,
        "parameters": sum(p.numel() for p in model.parameters()), "peak_over_model": (sampler.peak - before_load) / model_bytes,
        "extra_mb": (sampler.peak - before_load - model_bytes) / 2**20,
    }))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per method, alternating")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per process")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/swindex-bench-llama"))
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
            out = subprocess.run([sys.executable, __file__, "--child", method, "--dir", str(args.dir), "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            run = json.loads(out.stdout.strip().splitlines()[-1])
            if method in results:
                results[method]["times"] += run["times"]
                results[method]["peak_over_model"] = max(results[method]["peak_over_model"], run["peak_over_model"])
                results[method]["extra_mb"] = max(results[method]["extra_mb"], run["extra_mb"])
            else:
                results[method] = run
    plain, ours = results["plain"], results["swindex"]
    print(f"model: planted Llama, {ours['parameters'] / 1e6:.0f}M parameters, {ours['model_bytes'] / 2**30:.2f} GiB float32, CPU x{os.cpu_count()}")
    print(f"planted: {', '.join(planted)}")
    for r in (plain, ours):
        print(f"{r['method']:8} median {statistics.median(r['times']):6.2f} s over {len(r['times'])} runs; peak memory {r['peak_over_model']:.3f} x model "
              f"({r['extra_mb']:+.0f} MiB); found {'all planted' if r['found'] == planted else r['found']}")
    print(f"speed-up (plain / swindex): {statistics.median(plain['times']) / statistics.median(ours['times']):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
