"""Render the quantization benchmark as the docs page site/pages/quantization.md and chart site/assets/quantization.svg.

Reads benchmarks/results/quantization.json (written by bench_quantize.py; run that first, or pass --run).
The chart is plain SVG text (no plotting library): perplexity (log scale) against block size, one panel
per model, INT4 and INT8, plain round-to-nearest against the super-weight hold-out.

    python benchmarks/quantization_table.py [--run] [--input FILE] [--site DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from html import escape
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO / "benchmarks" / "results" / "quantization.json"
LABELS = {
    "rtn": "RTN",
    "hold": "RTN + hold-out",
    "hold_zscore": "hold-out + z-score clip",
    "hold_percentile": "hold-out + percentile clip",
    "clip_zscore": "z-score clip, no hold-out",
}
SERIES = (  # (bits, variant, colour, dash)
    (4, "rtn", "#d62728", ""),
    (4, "hold", "#d62728", "6 4"),
    (4, "hold_zscore", "#ff7f0e", "2 3"),
    (8, "rtn", "#1f77b4", ""),
    (8, "hold", "#1f77b4", "6 4"),
    (8, "hold_zscore", "#17becf", "2 3"),
)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}" if value < 10 else f"{value:.1f}"


def weight_table(model: dict, variants: list[str]) -> list[str]:
    original = model["original"]
    lines = ["| bits / block | " + " | ".join(LABELS[v] for v in variants) + " |", "|---|" + "---:|" * len(variants)]
    for key, row in model["weights"].items():
        bits, block = key.split("/")
        best = min(row[v] for v in variants)
        cells = []
        for v in variants:
            text = f"{fmt(row[v])} (×{row[v] / original:.2f})"
            cells.append(f"**{text}**" if row[v] == best else text)
        lines.append(f"| {bits.upper()} / {block} | " + " | ".join(cells) + " |")
    return lines


def activation_table(model: dict) -> list[str]:
    original = model["original"]
    lines = ["| activations | RTN | RTN + super activation held out |", "|---|---:|---:|"]
    for key, row in model["activations"].items():
        lines.append(f"| {key[1:]}-bit | {fmt(row['rtn'])} (×{row['rtn'] / original:.2f}) | {fmt(row['hold'])} (×{row['hold'] / original:.2f}) |")
    return lines


def findings(name: str, model: dict) -> list[str]:
    """Sentences computed from the figures, so the page never states what the data does not show."""
    w = model["weights"]
    out = []
    whole4, small4 = w["int4/tensor"], w["int4/128"]
    if model["held_out"]:
        gain = whole4["rtn"] / whole4["hold"]
        out.append(
            f"At INT4 with one block per tensor, holding the super weight out gives perplexity {fmt(whole4['hold'])} "
            f"against {fmt(whole4['rtn'])} for plain round-to-nearest ({gain:.1f}× lower); with blocks of 128 the two are "
            f"{fmt(small4['hold'])} and {fmt(small4['rtn'])}: small blocks already confine the outlier, as the paper reports."
        )
        clip8 = w["int8/128"]
        out.append(
            f"Clipping outliers without the hold-out clips the super weight too: {fmt(clip8['clip_zscore'])} at INT8 "
            f"(blocks of 128) against {fmt(clip8['hold_zscore'])} with it, from {fmt(model['original'])} unquantized."
        )
        a = model["activations"]
        worst = max(a, key=lambda k: a[k]["rtn"] / a[k]["hold"])
        out.append(
            f"Holding the super activation out of per-tensor activation quantization helps most at {worst[1:]} bits: "
            f"{fmt(a[worst]['hold'])} against {fmt(a[worst]['rtn'])}."
        )
        out.append(
            "On this model clipping at a z-score of 3 costs more than it saves at INT8: its ordinary weights are Gaussian, "
            "so the clipped tail carries real signal. Tune the threshold per model."
            if w["int8/128"]["hold_zscore"] > w["int8/128"]["hold"]
            else "Clipping the other outliers at a z-score of 3 helps on this model at INT8."
        )
    else:
        out.append(
            f"The detector finds no super weight in {name}, so there is nothing to hold out and the hold-out columns "
            f"equal plain round-to-nearest; the clipping columns show clipping alone."
        )
        out.append(
            f"Clipping at a z-score of 3 is harmful at INT8 ({fmt(w['int8/128']['hold_zscore'])} against "
            f"{fmt(w['int8/128']['rtn'])}) but pays at INT4 with large blocks ({fmt(whole4['hold_zscore'])} against "
            f"{fmt(whole4['rtn'])} per tensor): trained weights have outliers that matter, and a coarse grid hurts more."
            if w["int8/128"]["hold_zscore"] > w["int8/128"]["rtn"] and whole4["hold_zscore"] < whole4["rtn"]
            else f"Clipping at a z-score of 3 gives {fmt(w['int8/128']['hold_zscore'])} at INT8 (blocks of 128) and {fmt(whole4['hold_zscore'])} at INT4 per tensor."
        )
    return out


def page(data: dict) -> str:
    variants = data["variants"]
    lines = [
        "# Quantization that keeps super weights",
        "",
        "Round-to-nearest (RTN) quantization rounds every block of weights to a few integer levels between the block's",
        "minimum and maximum. A super weight is so much larger than its neighbours that, in a large block, it stretches",
        "that range until the ordinary weights all round to the same few values. The paper (Yu et al. 2024, section 4)",
        "holds the super weights out at full precision, clips the other outliers, quantizes, and puts the super weights",
        "back. `swindex.quantize` implements that recipe (simulated: weights are quantized and dequantized in place):",
        "",
        "```python",
        "from swindex import lookup",
        "from swindex.quantize import quantized, quantized_activations",
        "",
        "entry = lookup(\"huggyllama/llama-7b\")",
        "with quantized(model, bits=4, block_size=None, keep=entry, clip=\"zscore\"):   # whole-tensor INT4",
        "    ...   # weights restored bit for bit on exit; quantize_model(...) changes them for good",
        "with quantized_activations(model, bits=8, keep=entry):   # per-tensor activations, super activation held out",
        "    ...",
        "```",
        "",
        f"Below, perplexity on {data['sequences']} sequences of {data['length']} tokens that each model sampled itself",
        "(so ×1.00 is the unquantized model), for every linear layer quantized (embeddings and LM head kept). The weights",
        "held out are what `swindex detect` reports for the model. Bold marks the best of a row.",
        "",
        "![Perplexity against block size, INT4 and INT8, with and without the hold-out](../assets/quantization.svg)",
        "",
    ]
    for name, model in data["models"].items():
        held = ", ".join(f"`{h}`" for h in model["held_out"]) or "nothing (no super weight found)"
        seeds = f", geometric mean over {model['seeds']} seeds" if model.get("seeds", 1) > 1 else ""
        lines += [
            f"## {name}",
            "",
            f"{model['description']}{seeds}. Unquantized perplexity {fmt(model['original'])}; held out: {held}.",
            "",
            *weight_table(model, variants),
            "",
            *activation_table(model),
            "",
            *[f"- {s}" for s in findings(name, model)],
            "",
        ]
    lines += [
        "## Method",
        "",
        "- Blocks are runs of consecutive elements of the flattened tensor; *tensor* means one block per tensor.",
        "- Asymmetric min-max scaling per block; held-out weights are set aside before the range is computed.",
        "- z-score clip: |w| above mean(|w|) + 3·std(|w|) of the tensor; percentile clip: above the 99.99th",
        "  percentile of |w|.",
        "- Activations: per-tensor RTN of every linear layer's input and output on each forward call; the hold-out",
        "  keeps, per sequence, the largest element of each super activation's channel (and of the super weight's input",
        "  column) exact.",
        "- The planted models are tiny random Llamas whose later layers depend on a first-token attention sink that only",
        "  the planted super weight creates (`tests/fixtures_dependent.py`); stories260K is a real trained model with",
        "  none. Neither says how much a 7B model gains: run the benchmark on one to find out.",
        "",
        f"Regenerate: `python benchmarks/bench_quantize.py && python benchmarks/quantization_table.py`",
        f"(torch {data['torch']}, transformers {data['transformers']}, {data['generated']}, {data['seconds']} s on CPU).",
        "",
    ]
    return "\n".join(lines)


def chart(data: dict) -> str:
    """Plain SVG: one panel per model, log-scale perplexity against block size."""
    models = list(data["models"].items())
    blocks = [str(b) for b in data["blocks"]]
    pw, ph, left, top, gap = 330, 220, 58, 34, 40
    width = left + len(models) * (pw + gap)
    height = top + ph + 110
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'font-family="system-ui, sans-serif" font-size="11" role="img" aria-labelledby="qt-title">',
        '<title id="qt-title">Perplexity against quantization block size, with and without the super-weight hold-out</title>',
        '<style>.axis{stroke:currentColor;stroke-opacity:.5}.grid{stroke:currentColor;stroke-opacity:.12}text{fill:currentColor}</style>',
    ]
    for i, (name, model) in enumerate(models):
        x0 = left + i * (pw + gap)
        values = [model["original"]] + [model["weights"][f"int{b}/{k}"][v] for b, v, _, _ in SERIES for k in blocks]
        lo = math.floor(math.log10(min(values)))
        hi = math.ceil(math.log10(max(values)))
        hi = max(hi, lo + 1)

        def y(v: float) -> float:
            return top + ph - (math.log10(v) - lo) / (hi - lo) * ph

        def x(j: int) -> float:
            return x0 + 20 + j * (pw - 40) / (len(blocks) - 1)

        parts.append(f'<text x="{x0 + pw / 2}" y="{top - 14}" text-anchor="middle" font-weight="600">{escape(name)}</text>')
        for p in range(lo, hi + 1):
            parts.append(f'<line class="grid" x1="{x0}" x2="{x0 + pw}" y1="{y(10**p):.1f}" y2="{y(10**p):.1f}"/>')
            parts.append(f'<text x="{x0 - 6}" y="{y(10**p) + 4:.1f}" text-anchor="end">{10**p:g}</text>')
        parts.append(f'<line class="axis" x1="{x0}" x2="{x0}" y1="{top}" y2="{top + ph}"/>')
        parts.append(f'<line class="axis" x1="{x0}" x2="{x0 + pw}" y1="{top + ph}" y2="{top + ph}"/>')
        for j, b in enumerate(blocks):
            parts.append(f'<text x="{x(j):.1f}" y="{top + ph + 16}" text-anchor="middle">{escape(b)}</text>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{top + ph + 32}" text-anchor="middle">block size (elements)</text>')
        yo = y(model["original"])
        parts.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{yo:.1f}" y2="{yo:.1f}" stroke="#2ca02c" stroke-width="1.5"/>')
        parts.append(f'<text x="{x0 + pw - 4}" y="{yo - 4:.1f}" text-anchor="end" fill="#2ca02c">unquantized</text>')
        for bits, variant, colour, dash in SERIES:
            pts = " ".join(f"{x(j):.1f},{y(model['weights'][f'int{bits}/{b}'][variant]):.1f}" for j, b in enumerate(blocks))
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
            for j, b in enumerate(blocks):
                v = model["weights"][f"int{bits}/{b}"][variant]
                parts.append(f'<circle cx="{x(j):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"><title>INT{bits} {escape(LABELS[variant])}, block {escape(b)}: {v:.4g}</title></circle>')
        if i == 0:
            parts.append(f'<text transform="translate({x0 - 42},{top + ph / 2}) rotate(-90)" text-anchor="middle">perplexity (log)</text>')
    ly = top + ph + 52
    for k, (bits, variant, colour, dash) in enumerate(SERIES):
        lx = left + (k % 3) * 210
        row = ly + (k // 3) * 18
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{lx}" x2="{lx + 26}" y1="{row}" y2="{row}" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        parts.append(f'<text x="{lx + 32}" y="{row + 4}">INT{bits} {escape(LABELS[variant])}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="run bench_quantize.py first")
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--site", type=Path, default=REPO / "site")
    args = parser.parse_args()
    if args.run or not args.input.exists():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_quantize.py"), "--output", str(args.input)], check=True)
    data = json.loads(args.input.read_text(encoding="utf-8"))
    (args.site / "pages").mkdir(parents=True, exist_ok=True)
    (args.site / "assets").mkdir(parents=True, exist_ok=True)
    (args.site / "pages" / "quantization.md").write_text(page(data), encoding="utf-8")
    (args.site / "assets" / "quantization.svg").write_text(chart(data), encoding="utf-8")
    print(f"wrote {args.site / 'pages' / 'quantization.md'} and {args.site / 'assets' / 'quantization.svg'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
