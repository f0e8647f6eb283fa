"""Render the quantization benchmark as the docs page site/pages/quantization.md and chart site/assets/quantization.svg.

Reads benchmarks/results/quantization.json (written by bench_quantize.py; run that first, or pass --run).
The chart is plain SVG drawn by swindex.sitegen.chart (the site's chart module): perplexity (log scale)
against block size, one panel per model, INT4 and INT8, plain round-to-nearest against the hold-out.

    python benchmarks/quantization_table.py [--run] [--input FILE] [--site DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO / "benchmarks" / "results" / "quantization.json"
WHOLE_PATH = REPO / "benchmarks" / "quantization_whole_path.md"
"""The page's hand-written part: the path from lookup to check with the real quantizers, measured on SmolLM2."""
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
        lines.append(
            f"| {key[1:]}-bit | {fmt(row['rtn'])} (×{row['rtn'] / original:.2f}) | {fmt(row['hold'])} "
            f"(×{row['hold'] / original:.2f}) |"
        )
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
            f"against {fmt(whole4['rtn'])} for plain round-to-nearest ({gain:.1f}× lower); with blocks of 128 the two "
            f"are {fmt(small4['hold'])} and {fmt(small4['rtn'])}: small blocks already confine the outlier, "
            "as the paper reports."
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
            "On this model clipping at a z-score of 3 costs more than it saves at INT8: its ordinary weights are "
            "Gaussian, so the clipped tail carries real signal. Tune the threshold per model."
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
            f"{fmt(whole4['rtn'])} per tensor): trained weights have outliers that matter, and a "
            "coarse grid hurts more."
            if w["int8/128"]["hold_zscore"] > w["int8/128"]["rtn"] and whole4["hold_zscore"] < whole4["rtn"]
            else f"Clipping at a z-score of 3 gives {fmt(w['int8/128']['hold_zscore'])} at INT8 (blocks of 128) and "
            f"{fmt(whole4['hold_zscore'])} at INT4 per tensor."
        )
    return out


def benefit_section() -> list[str]:
    """What keeping buys on the real models the registry measured (evidence.keep_benefit),
    finding computed from the rows."""
    from swindex import entries
    from swindex.benefit import SCHEMES

    measured = [(e.id, e.benefit) for e in entries() if e.benefit is not None]
    if not measured:
        return []
    schemes = [s for s in SCHEMES if any(t.for_scheme(s) for _, t in measured)]
    lines = [
        "## What keeping buys on real models",
        "",
        "Measured on real checkpoints with the real quantizers (bitsandbytes, llm-compressor, "
        "llama.cpp) and swindex's own",
        "simulations: perplexity with every linear layer quantized, and with the modules holding the "
        "weights to keep left out.",
        "Each cell is the change keeping makes, ± its standard error from a paired per-chunk "
        "comparison; **bold** marks a",
        "change beyond twice its error. Each model page has the full table; "
        "`lookup(id).keep_benefit(scheme)` returns a row.",
        "",
        "| scheme | " + " | ".join(f"[{i}](../models/{i}/)" for i, _ in measured) + " |",
        "|---|" + "---:|" * len(measured),
    ]
    helped: dict[str, list[str]] = {"weights": [], "activations": []}
    flat: dict[str, list[str]] = {"weights": [], "activations": []}
    hurt: dict[str, list[str]] = {"weights": [], "activations": []}
    for scheme in schemes:
        cells = []
        for model, table in measured:
            row = next((r for r in table.for_scheme(scheme) if r.why == "weights_to_keep"), None)
            if row is None:
                cells.append("–")
                continue
            cells.append(f"**{row.figures}**" if row.measurable else row.figures)
            where = f"{SCHEMES[scheme].label} on {model.split('/')[-1]}"
            (helped if row.helps else flat)[SCHEMES[scheme].kind].append(where)
            if row.verdict == "hurts":
                hurt[SCHEMES[scheme].kind].append(where)
        lines.append(f"| {SCHEMES[scheme].label} | " + " | ".join(cells) + " |")
    weights_total = len(helped["weights"]) + len(flat["weights"])
    acts_total = len(helped["activations"]) + len(flat["activations"])
    lines += [
        "",
        f"- Weight-only schemes: keeping measurably helped in {len(helped['weights'])} of {weights_total} measured rows"
        + (f" ({'; '.join(helped['weights'])})" if helped["weights"] else "")
        + (f", and measurably hurt in {len(hurt['weights'])} ({'; '.join(hurt['weights'])})" if hurt["weights"] else "")
        + ". Block-wise formats mostly confine the outlier already; the advice gives each row's figures and the cost.",
        f"- Schemes that quantize activations: keeping measurably helped in {len(helped['activations'])} of "
        f"{acts_total} measured rows"
        + (f" ({'; '.join(helped['activations'])})" if helped["activations"] else "")
        + ". A per-tensor activation scale is set by the super activation, so the module whose input carries it is "
        "the one to keep; each model page also measures the other modules whose input peaks highest.",
        "",
    ]
    return lines


def page(data: dict) -> str:
    variants = data["variants"]
    lines = [
        "# Quantization that keeps super weights",
        "",
        "Round-to-nearest (RTN) quantization rounds every block of weights to a few integer levels between the block's",
        "minimum and maximum. A super weight is so much larger than its neighbours that, in a large "
        "block, it stretches",
        "that range until the ordinary weights all round to the same few values. The paper (Yu et al. 2024, section 4)",
        "holds the super weights out at full precision, clips the other outliers, quantizes, and "
        "puts the super weights",
        "back. `swindex.quantize` implements that recipe (simulated: weights are quantized and dequantized in place):",
        "",
        "```python",
        "from swindex import lookup",
        "from swindex.quantize import quantized, quantized_activations",
        "",
        'entry = lookup("huggyllama/llama-7b")',
        'with quantized(model, bits=4, block_size=None, keep=entry, clip="zscore"):   # whole-tensor INT4',
        "    ...   # weights restored bit for bit on exit; quantize_model(...) changes them for good",
        "with quantized_activations(model, bits=8, keep=entry):   # per-tensor activations, super activation held out",
        "    ...",
        "```",
        "",
        WHOLE_PATH.read_text(encoding="utf-8").rstrip("\n"),
        "",
        "## Measured on small models",
        "",
        f"Below, perplexity on {data['sequences']} sequences of {data['length']} tokens that each model sampled itself",
        "(so ×1.00 is the unquantized model), for every linear layer quantized (embeddings and LM "
        "head kept). The weights",
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
    lines += benefit_section()
    lines += [
        "## Method",
        "",
        "- Blocks are runs of consecutive elements of the flattened tensor; *tensor* means one block per tensor.",
        "- Asymmetric min-max scaling per block; held-out weights are set aside before the range is computed.",
        "- z-score clip: |w| above mean(|w|) + 3·std(|w|) of the tensor; percentile clip: above the 99.99th",
        "  percentile of |w|.",
        "- Activations: per-tensor RTN of every linear layer's input and output on each forward call; the hold-out",
        "  keeps, per sequence, the largest element of each super activation's channel (and of the "
        "super weight's input",
        "  column) exact.",
        "- The planted models are tiny random Llamas whose later layers depend on a first-token "
        "attention sink that only",
        "  the planted super weight creates (`tests/fixtures_dependent.py`); stories260K is a real trained model with",
        "  none. Neither says how much a 7B model gains: run the benchmark on one to find out.",
        "",
        "Regenerate: `python benchmarks/bench_quantize.py && python benchmarks/quantization_table.py`",
        f"(torch {data['torch']}, transformers {data['transformers']}, {data['generated']}, "
        f"{data['seconds']} s on CPU).",
        "",
    ]
    return "\n".join(lines)


def chart(data: dict) -> str:
    """One panel per model: log-scale perplexity against block size (swindex.sitegen.chart draws it)."""
    from swindex.sitegen.chart import Frame, Mark, Rule, Series, Tick, figure_svg, log_axis

    blocks = [str(b) for b in data["blocks"]]
    width, height, left, right, top, bottom = 402, 294, 58, 388, 34, 254
    frames = []
    for i, (name, model) in enumerate(data["models"].items()):
        values = [model["original"]] + [model["weights"][f"int{b}/{k}"][v] for b, v, _, _ in SERIES for k in blocks]
        y_of, y_ticks = log_axis(values, top, bottom)

        def x_of(j: int) -> float:
            return left + 20 + j * (right - left - 40) / (len(blocks) - 1)

        series = []
        for bits, variant, colour, dash in SERIES:
            label = f"INT{bits} {LABELS[variant]}"
            marks = []
            for j, b in enumerate(blocks):
                v = model["weights"][f"int{bits}/{b}"][variant]
                marks.append(Mark(x_of(j), y_of(v), f"{label}, block {b}: {v:.4g}"))
            series.append(Series(label, tuple(marks), colour, dash))
        frames.append(
            Frame(
                f"quantization-{i}",
                name,
                f"{name}: perplexity against block size",
                tuple(series),
                tuple(Tick(x_of(j), b) for j, b in enumerate(blocks)),
                y_ticks,
                "block size (elements)",
                "perplexity (log)" if i == 0 else "",
                (Rule(y_of(model["original"]), "unquantized", "#2ca02c"),),
                width,
                height,
                left,
                right,
                top,
                bottom,
            )
        )
    return figure_svg(frames, "Perplexity against quantization block size, with and without the super-weight hold-out")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="run bench_quantize.py first")
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--site", type=Path, default=REPO / "site")
    args = parser.parse_args()
    if args.run or not args.input.exists():
        subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "bench_quantize.py"), "--output", str(args.input)], check=True
        )
    data = json.loads(args.input.read_text(encoding="utf-8"))
    (args.site / "pages").mkdir(parents=True, exist_ok=True)
    (args.site / "assets").mkdir(parents=True, exist_ok=True)
    (args.site / "pages" / "quantization.md").write_text(page(data), encoding="utf-8")
    (args.site / "assets" / "quantization.svg").write_text(chart(data), encoding="utf-8")
    print(
        f"wrote {args.site / 'pages' / 'quantization.md'} and {args.site / 'assets' / 'quantization.svg'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
