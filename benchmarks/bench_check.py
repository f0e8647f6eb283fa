"""`swindex check` against loading the tensors it reads, on a large planted checkpoint, in the same run.

The checkpoint has a 7B model's down projections (32 layers of [4096, 11008], float16, 2.9 GB in four
shards with an index) and six planted super weights in four layers. Two ways to read them:

- check: ``swindex.checkpoint.check`` (shard index, one header per shard holding a weight, one row per weight);
- baseline: ``safetensors.safe_open(...).get_tensor`` of each down projection holding a weight (once each), then
  the values.

Both run on the same files, warm in the page cache, best of several runs; the ratio is the figure. Writes
JSON (default benchmarks/results/check.json).

    python benchmarks/bench_check.py [--layers 32] [--hidden 4096] [--intermediate 11008] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "check.json"
sys.path.insert(0, str(REPO / "tests"))


def write_checkpoint(
    folder: Path,
    layers: int,
    hidden: int,
    intermediate: int,
    plants: dict[tuple[int, int, int], float],
    shards: int = 4,
) -> int:
    """Down projections in float16, written tensor by tensor (one in memory at a time); returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"model.layers.{layer}.mlp.down_proj.weight" for layer in range(layers)]
    size = hidden * intermediate * 2
    weight_map, total = {}, 0
    for shard in range(shards):
        part = names[shard::shards]
        file = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
        header = {
            name: {"dtype": "F16", "shape": [hidden, intermediate], "data_offsets": [i * size, (i + 1) * size]}
            for i, name in enumerate(part)
        }
        text = json.dumps(header).encode()
        with (folder / file).open("wb") as handle:
            handle.write(struct.pack("<Q", len(text)) + text)
            for name in part:
                layer = int(name.split(".")[2])
                weight = rng.standard_normal((hidden, intermediate), dtype=np.float32)
                weight *= 0.02
                weight = weight.astype(np.float16)
                for (plant_layer, row, column), value in plants.items():
                    if plant_layer == layer:
                        weight[row, column] = value
                handle.write(weight.tobytes())
        weight_map.update({name: file for name in part})
        total += (folder / file).stat().st_size
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "num_hidden_layers": layers,
                "hidden_size": hidden,
                "intermediate_size": intermediate,
            }
        )
    )
    return total


def entry_for(plants: dict[tuple[int, int, int], float], layers: int, hidden: int, intermediate: int) -> dict:
    from conftest import BASE_ENTRY

    from check_support import claims_key

    entry = json.loads(json.dumps(BASE_ENTRY))
    key = claims_key(entry)
    template = entry[key][0]
    entry[key] = [
        {
            **template,
            "layer": layer,
            "tensor": f"model.layers.{layer}.mlp.down_proj.weight",
            "row": row,
            "column": column,
            "index": [row, column],
            "value": value,
        }
        for (layer, row, column), value in plants.items()
    ]
    entry["dimensions"] = {"num_layers": layers, "hidden_size": hidden, "intermediate_size": intermediate}
    entry.pop("verdict", None)
    return entry


def best(run, times: int) -> float:  # noqa: ANN001
    results = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        results.append(time.perf_counter() - start)
    return min(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=11008)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    from safetensors import safe_open

    from swindex.checkpoint import check
    from swindex.records import Entry

    last = args.layers - 1
    plants = {
        (1, 2533, 7890): 1.5625,
        (1, 1415, 7890): -0.9219,
        (1, 1512, 7890): 0.4375,
        (2, 3968, 7003): -2.31,
        (min(30, last), 10, 20): 0.75,
        (last, 11, 21): -0.8,
    }
    plants = {
        (layer, row % args.hidden, column % args.intermediate): value
        for (layer, row, column), value in plants.items()
        if layer < args.layers
    }
    entry = Entry.from_dict(entry_for(plants, args.layers, args.hidden, args.intermediate))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkpoint"
        started = time.perf_counter()
        size = write_checkpoint(folder, args.layers, args.hidden, args.intermediate, plants)
        print(
            f"wrote {size / 1e9:.2f} GB in {time.perf_counter() - started:.1f} s ({args.layers} layers of "
            f"[{args.hidden}, {args.intermediate}] float16)"
        )
        weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]

        report = check(folder, entry=entry)  # warm-up: imports, and the files' pages, as for the baseline below
        assert report.verdict == "kept", report

        def load() -> None:
            for layer in sorted({layer for layer, _, _ in plants}):
                name = f"model.layers.{layer}.mlp.down_proj.weight"
                with safe_open(str(folder / weight_map[name]), framework="numpy") as handle:
                    tensor = handle.get_tensor(name)
                for (plant_layer, row, column), value in plants.items():
                    if plant_layer == layer:
                        assert float(tensor[row, column]) == float(np.float16(value))

        load()
        check_seconds = best(lambda: check(folder, entry=entry), args.runs)
        load_seconds = best(load, max(2, args.runs // 2))
        tensors = len({layer for layer, _, _ in plants})
        loaded = tensors * args.hidden * args.intermediate * 2
        result = {
            "generated": datetime.date.today().isoformat(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "checkpoint": {
                "layers": args.layers,
                "hidden": args.hidden,
                "intermediate": args.intermediate,
                "dtype": "float16",
                "bytes": size,
                "shards": 4,
            },
            "weights": len(plants),
            "tensors_holding_them": tensors,
            "check_seconds": round(check_seconds, 5),
            "check_bytes_read": report.bytes_read,
            "check_reads": report.reads,
            "load_seconds": round(load_seconds, 4),
            "load_bytes": loaded,
            "speedup": round(load_seconds / check_seconds, 1),
            "runs": args.runs,
            "note": "files warm in the page cache for both; the baseline loads each tensor holding a weight once, "
            "with safetensors, and reads the values",
        }
    print(f"check       {check_seconds * 1000:8.1f} ms  ({report.bytes_read / 1024:.0f} KiB in {report.reads} reads)")
    print(
        f"load tensors {load_seconds * 1000:7.1f} ms  ({loaded / 1e6:.0f} MB: {len(plants)} weights "
        f"in {tensors} tensors)"
    )
    print(f"check is {result['speedup']}x faster than loading the tensors it reads")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
