"""Perplexity against block size for round-to-nearest quantization, with and without the super-weight hold-out.

Models (float32, CPU):

* planted: tests/fixtures_dependent.py's Llama whose later layers use a first-token attention sink that only
  its planted super weight creates (seeds 0, 1, 2; figures are geometric means over the seeds);
* stories260K (tests/fixtures/models/stories260K): a real trained tiny Llama without super weights.

The weights held out are what swindex's detector reports for the model (the planted weight for the planted
models, nothing for stories260K, where "hold-out" therefore means clipping alone). Perplexity is measured on
sequences each unquantized model samples itself (seed 0), so every figure is a ratio to a baseline measured
in the same run. Weight variants, each at INT8 and INT4 and block sizes 128, 512, 2048 and whole tensor:

  rtn             plain round-to-nearest (asymmetric min-max per block)
  hold            super weights held out at full precision, nothing clipped
  hold_zscore     held out, other outliers clipped at mean(|w|) + 3 std(|w|)   (the paper's recipe)
  hold_percentile held out, other outliers clipped at the 99.99th percentile of |w|
  clip_zscore     clipped at the same z-score without the hold-out (the super weight is clipped too)

Activation quantization (per-tensor RTN of every linear layer's input and output) at 8, 6 and 4 bits, with
and without the super activation held out. Writes JSON (default benchmarks/results/quantization.json);
benchmarks/quantization_table.py turns it into the docs page and chart.

    python benchmarks/bench_quantize.py [--seeds 3] [--sequences 16] [--length 128] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from swindex.quantize import Variant

REPO = Path(__file__).resolve().parent.parent
STORIES = REPO / "tests" / "fixtures" / "models" / "stories260K"
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "quantization.json"
BITS = (8, 4)
BLOCKS = (128, 512, 2048, None)
ACTIVATION_BITS = (8, 6, 4)
VARIANTS = {
    "rtn": Variant(hold_out=False),
    "hold": Variant(hold_out=True),
    "hold_zscore": Variant(hold_out=True, clip="zscore"),
    "hold_percentile": Variant(hold_out=True, clip="percentile"),
    "clip_zscore": Variant(hold_out=False, clip="zscore"),
}


def measure(model: Any, claims: list[dict], sequences: int, length: int) -> dict:
    """Every figure for one model: original, weight variants by bits and block, activation variants."""
    from swindex.quantize import compare_rtn, quantized_activations
    from swindex.layout import format_coordinate
    from swindex.verification.inputs import sampled
    from swindex.verification.measure import lm_pass

    inputs = sampled(model, sequences=sequences, length=length, seed=0)

    def ppl() -> float:
        return lm_pass(model, inputs, batch_size=8).perplexity

    original = ppl()
    result = {
        "original": original,
        "weights": {},
        "activations": {},
        "held_out": [format_coordinate(c["tensor"], c["index"]) for c in claims],
    }
    for bits in BITS:
        for block in BLOCKS:
            comparison = compare_rtn(model, inputs, claims, bits, block, VARIANTS, original=original, batch_size=8)
            result["weights"][f"int{bits}/{block or 'tensor'}"] = {
                name: v.perplexity for name, v in comparison.variants.items()
            }
    for bits in ACTIVATION_BITS:
        with quantized_activations(model, bits):
            plain = ppl()
        with quantized_activations(model, bits, keep=claims):
            held = ppl()
        result["activations"][f"a{bits}"] = {"rtn": plain, "hold": held}
    return result


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def combine(runs: list[dict]) -> dict:
    """Geometric means over seeds, figure by figure."""
    out = {
        "original": geometric_mean([r["original"] for r in runs]),
        "weights": {},
        "activations": {},
        "held_out": runs[0]["held_out"],
    }
    for section in ("weights", "activations"):
        for key, row in runs[0][section].items():
            out[section][key] = {name: geometric_mean([r[section][key][name] for r in runs]) for name in row}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as transformers_logging

    sys.path.insert(0, str(REPO / "tests"))
    from fixtures_dependent import dependent_llama

    from swindex.detection import detect

    transformers_logging.disable_progress_bar()
    torch.manual_seed(0)
    started = time.perf_counter()
    models = {}

    runs = []
    for seed in range(args.seeds):
        model, planted = dependent_llama(seed=seed)
        claims = detect(model).to_entry()["claims"]
        found = [(c["tensor"], tuple(c["index"])) for c in claims]
        if found != [(planted.tensor, planted.index)]:
            print(
                f"warning: seed {seed}: detector found {found}, planted {planted.tensor}{list(planted.index)}",
                file=sys.stderr,
            )
        runs.append(measure(model, claims, args.sequences, args.length))
        print(f"planted seed {seed}: original {runs[-1]['original']:.3f}", file=sys.stderr)
    models["planted"] = {
        **combine(runs),
        "seeds": args.seeds,
        "per_seed": runs,
        "description": "dependent_llama (tests/fixtures_dependent.py), 6 layers, hidden 64",
    }

    if STORIES.is_dir():
        model = LlamaForCausalLM.from_pretrained(STORIES).eval()
        claims = detect(model).to_entry()["claims"]
        models["stories260K"] = {
            **measure(model, claims, args.sequences, args.length),
            "seeds": 1,
            "description": "stories260K (llama2.c), 5 layers, hidden 64, trained",
        }
        print(f"stories260K: original {models['stories260K']['original']:.3f}, held out {len(claims)}", file=sys.stderr)
    else:
        print(f"skipping stories260K: {STORIES} not found", file=sys.stderr)

    data = {
        "generated": dt.date.today().isoformat(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sequences": args.sequences,
        "length": args.length,
        "bits": list(BITS),
        "blocks": [b or "tensor" for b in BLOCKS],
        "variants": list(VARIANTS),
        "activation_bits": list(ACTIVATION_BITS),
        "seconds": round(time.perf_counter() - started, 1),
        "models": models,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for name, m in models.items():
        print(f"\n{name}: original perplexity {m['original']:.3f} (held out: {', '.join(m['held_out']) or 'nothing'})")
        print(f"{'':14}" + "".join(f"{v:>16}" for v in VARIANTS))
        for key, row in m["weights"].items():
            print(f"{key:14}" + "".join(f"{row[v]:16.3f}" for v in VARIANTS))
        for key, row in m["activations"].items():
            print(f"{key:14}{row['rtn']:16.3f}{row['hold']:16.3f}")
    print(f"\nwrote {args.output} in {data['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
