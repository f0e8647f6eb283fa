"""Site build time for a synthetic registry of 1,000 models.

Each entry (schema 2) looks like a detector-made one: one claim with two sources and its measured impact
(critical, or inert for every seventh model, whose verdict is then "no single weight is critical"), a
32-layer detection run (so every page draws its chart) and a verification run; every fifth model's paper
also publishes per-layer activations (charted as well). Both API versions are written (v1 converted from
v2). Figures reported, all from the same run:
- the full build (validate, render pages + JSON, mkdocs --strict) of N models, split into its halves;
- per-model cost, and the ratio of the N-model build to a build of N/10 models (1.0 x 10 would be linear);
- the baseline: validating and loading the same N entries alone (`load_registry`), which every build must do.

    python benchmarks/bench_site.py [--models 1000]
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path

from swindex.claims import derive_verdict
from swindex.registry import load_registry
from swindex.sitegen.build import build_site
from swindex.yamlio import dump_yaml

FAMILIES = ("llama", "mistral", "qwen2", "olmo", "phi3", "gemma")


def synthetic_entry(i: int) -> dict:
    layer, row, column = 1 + i % 3, (i * 37) % 4096, (i * 101) % 11008
    source = {
        "citation": f"Synthetic source {i}, Table 2",
        "kind": "paper",
        "evidence": "reported",
        "url": f"https://example.org/paper/{i}",
        "quote": f"layer {layer} [{row}, {column}]",
    }
    layers = [
        {
            "layer": n,
            "input_max": -400.0 - i if n == layer else 3.0 + math.sin(n + i),
            "input_channel": column if n == layer else n,
            "input_token": 0,
            "output_max": 1200.0 + i if n == layer else 2.0 + 0.1 * n,
            "output_channel": row if n == layer else n,
            "output_token": 0,
        }
        for n in range(32)
    ]
    if i % 5 == 0:
        source["measurements"] = {
            f"layer_{row['layer']}_{side}_max": row[f"{side}_max"] for row in layers for side in ("input", "output")
        }
    inert = i % 7 == 0
    impact = {
        "classification": "inert" if inert else "critical",
        "measured_by": "swindex",
        "metric": "perplexity",
        "original": 6.0,
        "zeroed": 6.1 if inert else 900.0,
        "ratio": 1.0167 if inert else 150.0,
    }
    entry = {
        "schema_version": 2,
        "id": f"org{i % 50}/model-{i}",
        "aliases": [f"Model {i}"],
        "architecture": "LlamaForCausalLM",
        "family": FAMILIES[i % len(FAMILIES)],
        "parameters": 1_000_000_000 + i,
        "revision": None,
        "modified": "2026-11-28",
        "dimensions": {"num_layers": 32, "hidden_size": 4096, "intermediate_size": 11008},
        "claims": [
            {
                "layer": layer,
                "tensor": f"model.layers.{layer}.mlp.down_proj.weight",
                "row": row,
                "column": column,
                "expert": None,
                "index": [row, column],
                "value": -0.5,
                "value_dtype": "float16",
                "status": "detected" if inert else ("confirmed", "reported", "detected")[i % 3],
                "impact": impact,
                "sources": (
                    [
                        {
                            "citation": "swindex bench detect",
                            "kind": "swindex",
                            "evidence": "detected",
                            "date": "2026-11-28",
                        }
                    ]
                    if inert or i % 3 == 2
                    else [
                        source,
                        {
                            **copy.deepcopy(source),
                            "kind": "repository",
                            "evidence": "detected",
                            "citation": f"Synthetic reproduction {i}",
                        },
                    ]
                ),
            }
        ],
        "evidence": {
            "detection": {"tool": "bench", "date": "2026-11-28", "dtype": "float16", "layers": layers},
            "verification": {
                "tool": "bench",
                "date": "2026-11-28",
                "metric": "perplexity",
                "original": 6.0,
                "all_zeroed": 6.1 if inert else 900.0,
                "control": 6.1,
            },
        },
    }
    entry["verdict"] = derive_verdict(entry)
    return entry


def write_registry(root: Path, count: int) -> Path:
    for i in range(count):
        entry = synthetic_entry(i)
        path = root / f"{entry['id']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(entry), encoding="utf-8")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    args = parser.parse_args()
    small = max(1, args.models // 10)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        big_registry = write_registry(scratch / "big", args.models)
        small_registry = write_registry(scratch / "small", small)

        start = time.perf_counter()
        load_registry(big_registry)
        baseline = time.perf_counter() - start

        small_build = build_site(small_registry, scratch / "out-small")
        small_total = small_build.render_seconds + small_build.mkdocs_seconds
        big = build_site(big_registry, scratch / "out-big")
        total = big.render_seconds + big.mkdocs_seconds
        size = sum(p.stat().st_size for p in big.output.rglob("*") if p.is_file())

    print(
        f"site build, {args.models} models: {total:.1f} s  (validate+render {big.render_seconds:.1f} s, mkdocs "
        f"--strict {big.mkdocs_seconds:.1f} s)"
    )
    print(f"  per model: {1000 * total / args.models:.1f} ms; output {size / 1e6:.0f} MB")
    print(f"  scaling: {args.models} vs {small} models took {total / small_total:.1f}x as long (10x would be linear)")
    print(
        f"  baseline, validating + loading the same entries alone: {baseline:.1f} s -> the build costs "
        f"{total / baseline:.1f}x that"
    )


if __name__ == "__main__":
    main()
