"""Measure what keeping buys on a real model (swindex.benefit): perplexity with and without keeping, per scheme.

Why a script: the table is evidence in a registry entry, measured once per model on this machine's real
quantizers (bitsandbytes, llm-compressor, llama.cpp), not something users run. It loads a GGUF file the way
swindex.loading does (dequantized to float32), scores equal chunks of the shipped evaluation text, and pairs
every "all quantized" run with its "kept" run chunk by chunk (swindex.benefit.paired_change).

    nice python scripts/measure_benefit.py FILE.gguf --model-id ORG/NAME [--keep MODULE ...] [--schemes KEY ...]
        [--write registry/ORG/NAME.yaml | --output table.yaml]

Kept under every scheme: the modules holding the entry's weights to keep (``--keep`` when the registry has no
entry yet); under the activation schemes also each of the three linear layers whose input peaks highest on
the calibration slice. swindex's own RTN holds the weights to keep out as scalars, as ``swindex quantize``
does; the other quantizers keep whole modules (what their configuration can say).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from swindex.benefit import SCHEMES, BenefitRow, BenefitTable, chunk_nll_from_running_perplexity, paired_change  # noqa: E402

LLAMA_BIN = Path(os.environ.get("SWINDEX_LLAMA_BIN", REPO / ".cache" / "llama-bin"))
LLMC_PYTHON = Path(os.environ.get("SWINDEX_LLMC_PYTHON", REPO / ".cache" / "llmc-venv" / "bin" / "python"))
HELD_SCALAR_BYTES = 12
"""What holding one scalar out costs when stored: its float32 value and two int32 indices."""
RTN = {  # scheme: (bits, block: an int, "channel" or None for the whole tensor)
    "rtn-w4-g32": (4, 32),
    "rtn-w4-g128": (4, 128),
    "rtn-w4-g512": (4, 512),
    "rtn-w4-channel": (4, "channel"),
    "rtn-w4-tensor": (4, None),
    "rtn-w8-tensor": (8, None),
}
ACTIVATIONS = {  # scheme: (format, granularity, static)
    "a-int8-tensor-dynamic": ("int8", "tensor", False),
    "a-int8-tensor-static": ("int8", "tensor", True),
    "a-int8-token-dynamic": ("int8", "token", False),
    "a-fp8-tensor-dynamic": ("fp8", "tensor", False),
    "a-fp8-tensor-static": ("fp8", "tensor", True),
}
PEAK_SCHEMES = ("a-int8-tensor-dynamic",)
"""The schemes under which each of the three highest-peaking inputs is also kept,
one at a time (the costly controls)."""
BNB = {"bnb-nf4": "nf4", "bnb-fp4": "fp4"}
LLAMA = {"llama.cpp-q4_0": "Q4_0", "llama.cpp-q4_k_m": "Q4_K_M"}
LLMC = {"llmc-w8a8": "W8A8", "llmc-fp8": "FP8"}
DEFAULT_SCHEMES = tuple(SCHEMES)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Subject:
    """The loaded model, its evaluation chunks and calibration slice, and what each run keeps."""

    model: Any
    tokenizer: Any
    gguf: Path
    artifact: Any
    evaluation: Any  # [chunks, length] token ids
    calibration: Any  # [k, length] token ids, disjoint from the evaluation chunks
    keep_modules: tuple[str, ...]
    keep_weights: tuple[tuple[str, tuple[int, ...]], ...]  # (tensor, index) held out by swindex's RTN
    peaks: list[dict[str, Any]]


def chunk_nll(model: Any, ids: Any, batch: int = 4) -> list[float]:
    """Mean next-token NLL of each row of ``ids`` (one chunk per row)."""
    import torch

    result: list[float] = []
    with torch.no_grad():
        for start in range(0, ids.shape[0], batch):
            rows = ids[start : start + batch]
            logits = model(input_ids=rows, use_cache=False).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), rows[:, 1:], reduction="none")
            result.extend(float(v) for v in nll.double().mean(dim=1))
    return result


def linear_modules(model: Any) -> list[str]:
    from swindex.quantize import quantizable_parameters

    return [n.rsplit(".", 1)[0] for n in quantizable_parameters(model) if n.endswith(".weight")]


def input_peaks(model: Any, ids: Any) -> list[dict[str, Any]]:
    """Every linear layer's largest input magnitude on ``ids`` and its channel, largest first."""
    import torch

    peaks: dict[str, tuple[float, int]] = {}
    handles = []
    for name in linear_modules(model):

        def hook(module: Any, args: tuple, name: str = name) -> None:
            x = args[0].detach().abs().reshape(-1, args[0].shape[-1])
            value, flat = x.max(dim=0)
            channel = int(value.argmax())
            if float(value[channel]) > peaks.get(name, (-1.0, 0))[0]:
                peaks[name] = (float(value[channel]), channel)

        handles.append(model.get_submodule(name).register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for start in range(0, ids.shape[0], 4):
                model(input_ids=ids[start : start + 4], use_cache=False)
    finally:
        for h in handles:
            h.remove()
    ordered = sorted(peaks.items(), key=lambda kv: -kv[1][0])
    return [{"module": m, "input_peak": round(v, 2), "channel": c} for m, (v, c) in ordered]


# ---- swindex's own round-to-nearest (weights) -------------------------------------------------------------


@contextmanager
def rtn(
    model: Any, bits: int, block: int | str | None, holdout: Sequence[tuple[str, tuple[int, ...]]]
) -> Iterator[None]:
    """Every linear weight round-to-nearest quantized (restored after); ``holdout`` scalars kept exact."""
    import torch

    from swindex.quantize import quantize_tensor

    saved = {}
    held: dict[str, list[tuple[int, ...]]] = {}
    for tensor, index in holdout:
        held.setdefault(tensor, []).append(index)
    try:
        for module in linear_modules(model):
            weight = model.get_submodule(module).weight
            saved[module] = weight.detach().clone()
            size = weight.shape[-1] if block == "channel" else block
            q, _ = quantize_tensor(weight.detach(), bits, size, holdout=held.get(f"{module}.weight", ()))
            with torch.no_grad():
                weight.copy_(q)
        yield
    finally:
        with torch.no_grad():
            for module, original in saved.items():
                model.get_submodule(module).weight.copy_(original)


# ---- activation quantization (weights left as they are) ---------------------------------------------------

FP8_MAX = 448.0  # largest float8 e4m3 value


def fake_quant(x: Any, fmt: str, scale: Any) -> Any:
    """Symmetric fake quantization of ``x`` with ``scale`` (a scalar, or one per token) to INT8 or FP8 e4m3."""
    import torch

    xf = x.float()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    if fmt == "int8":
        q = torch.clamp(torch.round(xf / safe), -127, 127) * safe
    else:
        q = torch.clamp(xf / safe, -FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).float() * safe
    return q.to(x.dtype)


def absmax_scale(x: Any, fmt: str, granularity: str) -> Any:
    top = 127.0 if fmt == "int8" else FP8_MAX
    if granularity == "token":
        return x.detach().float().abs().amax(dim=-1, keepdim=True) / top
    return x.detach().float().abs().amax() / top


@contextmanager
def activations(
    model: Any, fmt: str, granularity: str, static: dict[str, Any] | None, skip: Sequence[str]
) -> Iterator[None]:
    """Every linear layer's input fake-quantized
    (dynamic scales, or ``static`` ones per module); ``skip`` left exact."""
    handles = []
    for name in linear_modules(model):
        if name in skip:
            continue

        def pre(module: Any, args: tuple, name: str = name) -> Any:
            x = args[0]
            scale = static[name] if static is not None else absmax_scale(x, fmt, granularity)
            return (fake_quant(x, fmt, scale), *args[1:])

        handles.append(model.get_submodule(name).register_forward_pre_hook(pre))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def static_scales(model: Any, ids: Any, fmt: str) -> dict[str, Any]:
    """Per-module per-tensor scales from the calibration slice's input absmax (as static quantizers calibrate)."""
    peaks = {p["module"]: p["input_peak"] for p in input_peaks(model, ids)}
    import torch

    top = 127.0 if fmt == "int8" else FP8_MAX
    return {m: torch.tensor(v / top) for m, v in peaks.items()}


# ---- the schemes ---------------------------------------------------------------------------------------------

Variant = tuple[tuple[str, ...], str]  # (kept modules, why)


def torch_rows(subject: Subject, schemes: Sequence[str]) -> list[BenefitRow]:
    """The schemes swindex simulates in torch: RTN weights and activation quantization."""
    import torch

    model, ids = subject.model, subject.evaluation
    rows = []
    tokens = int(ids.shape[0] * (ids.shape[1] - 1))
    lib = f"torch {torch.__version__}"  # a TorchVersion: formatted to plain text
    for scheme in schemes:
        if scheme in RTN:
            bits, block = RTN[scheme]
            with rtn(model, bits, block, ()):
                base = chunk_nll(model, ids)
            with rtn(model, bits, block, subject.keep_weights):
                kept = chunk_nll(model, ids)
            coordinates = tuple(f"{t.rsplit('.', 1)[0]}" for t, _ in subject.keep_weights)
            paired = paired_change(base, kept)
            note = f"{len(subject.keep_weights)} weight(s) to keep held out as scalars, as swindex quantize does"
            rows.append(
                BenefitRow.measured(
                    scheme,
                    tuple(dict.fromkeys(coordinates)),
                    "weights_to_keep",
                    paired,
                    cost_bytes=HELD_SCALAR_BYTES * len(subject.keep_weights),
                    tokens=tokens,
                    library=lib,
                    note=note,
                )
            )
            say(f"{scheme}: {paired.baseline:.2f} -> {paired.changed:.2f} ({paired.change:+.2%} ± {paired.error:.2%})")
        elif scheme in ACTIVATIONS:
            fmt, granularity, is_static = ACTIVATIONS[scheme]
            scales = static_scales(model, subject.calibration, fmt) if is_static else None
            with activations(model, fmt, granularity, scales, ()):
                base = chunk_nll(model, ids)
            for kept, why in variants(subject, scheme in PEAK_SCHEMES):
                with activations(model, fmt, granularity, scales, kept):
                    nll = chunk_nll(model, ids)
                paired = paired_change(base, nll)
                rows.append(
                    BenefitRow.measured(
                        scheme,
                        kept,
                        why,
                        paired,
                        cost_bytes=0,
                        tokens=tokens,
                        library=lib,
                        note="weights not quantized; keeping leaves the module's input unquantized (a float "
                        "matmul at run time)",
                    )
                )
                say(
                    f"{scheme} keep {kept}: {paired.baseline:.2f} -> {paired.changed:.2f} ({paired.change:+.2%} "
                    f"± {paired.error:.2%})"
                )
    return rows


def variants(subject: Subject, peaks: bool) -> list[Variant]:
    """The claim's modules, then (with ``peaks``) each of the three highest-peaking inputs that is not one of them."""
    result: list[Variant] = [(subject.keep_modules, "weights_to_keep")]
    for peak in subject.peaks[:3] if peaks else ():
        if peak["module"] not in subject.keep_modules:
            result.append(((peak["module"],), "input_peak"))
    return result


def float_folder(subject: Subject, where: Path) -> Path:
    """The dequantized model saved as a float32 safetensors folder with its tokenizer
    (what bnb and llm-compressor load)."""
    folder = where / "float32"
    if not (folder / "config.json").exists():
        model = subject.model
        quantizer = getattr(model, "hf_quantizer", None)
        model.hf_quantizer = None  # the GGUF loader's marker: the weights are already plain float32 tensors
        try:
            model.save_pretrained(folder)
        finally:
            model.hf_quantizer = quantizer
        subject.tokenizer.save_pretrained(folder)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config.pop("quantization_config", None)
        (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def bnb_rows(subject: Subject, schemes: Sequence[str], where: Path) -> list[BenefitRow]:
    """bitsandbytes 4-bit through transformers' BitsAndBytesConfig, on CPU; kept = llm_int8_skip_modules."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    folder = float_folder(subject, where)
    rows = []
    lib = f"bitsandbytes {version('bitsandbytes')}"
    tokens = int(subject.evaluation.shape[0] * (subject.evaluation.shape[1] - 1))

    def run(kind: str, skip: Sequence[str]) -> tuple[list[float], int]:
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=kind,
            bnb_4bit_compute_dtype=torch.float32,
            llm_int8_skip_modules=["lm_head", *skip],
        )
        model = AutoModelForCausalLM.from_pretrained(
            folder, quantization_config=config, dtype=torch.float32, device_map="cpu"
        )
        model.eval()
        for name in skip:
            kind_of = type(model.get_submodule(name)).__name__
            if kind_of != "Linear":
                raise SystemExit(f"{name} was meant to stay unquantized but bitsandbytes made it a {kind_of}")
        nll = chunk_nll(model, subject.evaluation)
        size = int(model.get_memory_footprint())
        del model
        return nll, size

    for scheme in schemes:
        base, size = run(BNB[scheme], ())
        kept, kept_size = run(BNB[scheme], subject.keep_modules)
        paired = paired_change(base, kept)
        rows.append(
            BenefitRow.measured(
                scheme,
                subject.keep_modules,
                "weights_to_keep",
                paired,
                cost_bytes=max(kept_size - size, 0),
                tokens=tokens,
                library=lib,
                note="kept modules in llm_int8_skip_modules (float32); cost from the models' memory footprints",
            )
        )
        say(f"{scheme}: {paired.baseline:.2f} -> {paired.changed:.2f} ({paired.change:+.2%} ± {paired.error:.2%})")
    return rows


def llama_rows(
    subject: Subject, schemes: Sequence[str], where: Path, layers: Sequence[int], chunks: int, ctx: int
) -> list[BenefitRow]:
    """llama.cpp's real llama-quantize (requantized from the GGUF) and llama-perplexity;
    kept = --tensor-type at Q8_0."""
    from swindex.layout import gguf_tensor_name
    from swindex.verification.inputs import eval_text

    env = dict(os.environ, LD_LIBRARY_PATH=str(LLAMA_BIN))
    text = where / "eval.txt"
    text.write_text(eval_text(), encoding="utf-8")
    build = subprocess.run([str(LLAMA_BIN / "llama-perplexity"), "--version"], capture_output=True, text=True, env=env)
    found = re.search(r"version: ([^\n]+)", build.stdout + build.stderr)
    lib = f"llama.cpp {found.group(1).strip()}"[:100] if found else "llama.cpp"

    def quantize(kind: str, keep: bool) -> Path:
        out = where / f"{kind}-{'kept' if keep else 'all'}.gguf"
        command = [str(LLAMA_BIN / "llama-quantize"), "--allow-requantize"]
        for layer in layers if keep else ():
            command += ["--tensor-type", f"{gguf_tensor_name(layer).removesuffix('.weight')}=q8_0"]
        command += [str(subject.gguf), str(out), kind, "2"]
        subprocess.run(command, check=True, capture_output=True, env=env)
        return out

    def perplexity(path: Path) -> list[float]:
        command = [
            str(LLAMA_BIN / "llama-perplexity"),
            "-m",
            str(path),
            "-f",
            str(text),
            "-c",
            str(ctx),
            "-b",
            str(ctx),
            "--chunks",
            str(chunks),
            "-t",
            "2",
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        running = [float(v) for v in re.findall(r"\[\d+\]([0-9.]+)", done.stdout + done.stderr)]
        if len(running) != chunks:
            raise SystemExit(f"llama-perplexity printed {len(running)} chunk values, expected {chunks}")
        return chunk_nll_from_running_perplexity(running)

    rows = []
    for scheme in schemes:
        kind = LLAMA[scheme]
        base_file, kept_file = quantize(kind, False), quantize(kind, True)
        paired = paired_change(perplexity(base_file), perplexity(kept_file))
        cost = kept_file.stat().st_size - base_file.stat().st_size
        rows.append(
            BenefitRow.measured(
                scheme,
                subject.keep_modules,
                "weights_to_keep",
                paired,
                cost_bytes=max(cost, 0),
                tokens=chunks * (ctx // 2),
                library=lib,
                note=f"requantized from {subject.gguf.name} (--allow-requantize); kept tensors at Q8_0 "
                f"(--tensor-type); llama-perplexity -c {ctx} scores the second half of each chunk; cost "
                "from the file sizes",
            )
        )
        say(f"{scheme}: {paired.baseline:.2f} -> {paired.changed:.2f} ({paired.change:+.2%} ± {paired.error:.2%})")
        base_file.unlink()
        kept_file.unlink()
    return rows


def llmc_rows(subject: Subject, schemes: Sequence[str], where: Path) -> tuple[list[BenefitRow], str]:
    """llm-compressor's oneshot (its own venv, scripts/benefit_llmc.py); kept = the modules in ``ignore``."""
    folder = float_folder(subject, where)
    request = {
        "folder": str(folder),
        "evaluation": subject.evaluation.tolist(),
        "calibration": subject.calibration.tolist(),
        "runs": [{"scheme": LLMC[s], "ignore": list(k)} for s in schemes for k in ((), subject.keep_modules)],
    }
    (where / "llmc-request.json").write_text(json.dumps(request), encoding="utf-8")
    subprocess.run(
        [
            str(LLMC_PYTHON),
            str(REPO / "scripts" / "benefit_llmc.py"),
            str(where / "llmc-request.json"),
            str(where / "llmc.json"),
        ],
        check=True,
    )
    answer = json.loads((where / "llmc.json").read_text(encoding="utf-8"))
    lib = f"llm-compressor {answer['versions']['llmcompressor']}"
    tokens = int(subject.evaluation.shape[0] * (subject.evaluation.shape[1] - 1))
    rows = []
    for scheme in schemes:
        base, kept = (r for r in answer["runs"] if r["scheme"] == LLMC[scheme])
        paired = paired_change(base["nll"], kept["nll"])
        for name in subject.keep_modules:
            if kept["formats"].get(name) is not None:
                raise SystemExit(f"{name} was in ignore but llm-compressor quantized it ({kept['formats'][name]})")
        numel = sum(kept["numel"].get(m, 0) for m in subject.keep_modules)
        rows.append(
            BenefitRow.measured(
                scheme,
                subject.keep_modules,
                "weights_to_keep",
                paired,
                cost_bytes=numel,
                tokens=tokens,
                library=lib,
                note="oneshot on CPU, calibrated on the calibration slice; kept modules in ignore (stay 16-bit: 1 "
                "more byte per weight than 8-bit)",
            )
        )
        say(f"{scheme}: {paired.baseline:.2f} -> {paired.changed:.2f} ({paired.change:+.2%} ± {paired.error:.2%})")
    return rows, answer["versions"]["llmcompressor"]


def parse_weight(text: str) -> tuple[str, tuple[int, ...]]:
    """``model.layers.5.mlp.down_proj.weight[62, 956]`` as (tensor, index)."""
    found = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\[([0-9, ]+)\]\s*", text)
    if not found:
        raise SystemExit(f"--hold {text!r}: write a weight as TENSOR[ROW, COLUMN]")
    return found.group(1), tuple(int(i) for i in found.group(2).split(","))


def load(
    gguf: Path, model_id: str, keep: Sequence[str], chunks: int, length: int, calibration: int, hold: Sequence[str] = ()
) -> Subject:
    import torch

    from swindex import lookup
    from swindex.errors import UnknownModelError
    from swindex.loading import load_model
    from swindex.verification.inputs import text_windows

    loaded = load_model(str(gguf), dtype="float32", device="cpu")
    windows = text_windows(loaded.model, loaded.tokenizer, sequences=chunks + calibration, length=length).input_ids
    if windows.shape[0] < chunks + calibration:
        raise SystemExit(f"the evaluation text gives only {windows.shape[0]} windows of {length} tokens; ask for fewer")
    weights = tuple(parse_weight(w) for w in hold)
    modules = tuple(keep)
    if not modules:
        try:
            entry = lookup(model_id)
        except UnknownModelError:
            raise SystemExit(f"no registry entry for {model_id}: name the modules to keep with --keep") from None
        weights = tuple((c.tensor, tuple(c.index)) for c in entry.weights_to_keep)
        modules = tuple(dict.fromkeys(c.module for c in entry.weights_to_keep))
    torch.manual_seed(0)
    evaluation, calib = windows[:chunks], windows[chunks:]
    peaks = input_peaks(loaded.model, calib)
    say("input peaks: " + ", ".join(f"{p['module']} {p['input_peak']:.0f}" for p in peaks[:5]))
    return Subject(loaded.model, loaded.tokenizer, gguf, loaded.artifact, evaluation, calib, modules, weights, peaks)


def table(
    subject: Subject, rows: list[BenefitRow], libraries: dict[str, str], length: int, calibration: int, today: str
) -> dict[str, Any]:
    from swindex.version import tool

    chunks = int(subject.evaluation.shape[0])
    record = BenefitTable(
        date=today,
        tool=f"{tool('benefit')} (scripts/measure_benefit.py)",
        text="everyday.txt",
        tokens=chunks * (length - 1),
        chunks=chunks,
        seed=0,
        rows=tuple(rows),
        libraries=libraries,
        calibration=f"everyday.txt windows {chunks + 1}-{chunks + calibration} of {length} tokens (after "
        "the evaluated ones)",
        peaks=tuple(subject.peaks[:5]),
    )
    result: dict[str, Any] = {
        "tool": record.tool,
        "date": record.date,
        "text": record.text,
        "tokens": record.tokens,
        "chunks": record.chunks,
        "seed": record.seed,
        "calibration": record.calibration,
        "libraries": dict(record.libraries),
    }
    if subject.artifact is not None:
        result["artifact"] = subject.artifact.to_dict()
    result["peaks"] = [dict(p) for p in record.peaks]
    result["rows"] = [r.to_dict() for r in record.rows]
    return result


def write_entry(path: Path, measured: dict[str, Any], today: str) -> None:
    """Put the table into the entry as evidence.keep_benefit, validated, written atomically."""
    from swindex.claims import touch
    from swindex.registry import write_atomic
    from swindex.validate import validate_entry_dict
    from swindex.yamlio import dump_yaml, load_yaml

    before = load_yaml(path)
    entry = json.loads(json.dumps(before))
    entry.setdefault("evidence", {})["keep_benefit"] = measured
    entry = touch(entry, before, today)
    problems = validate_entry_dict(entry, path)
    if problems:
        raise SystemExit("\n".join(str(p) for p in problems))
    write_atomic(path, dump_yaml(entry, header="yaml-language-server: $schema=../../swindex/data/entry.schema.json"))


def merge(tables: Sequence[Path], progress: Sequence[Path]) -> dict[str, Any]:
    """One table from runs measured in parallel on the same chunks: their rows, and rows saved by interrupted runs."""
    from swindex.yamlio import load_yaml

    loaded = [load_yaml(t) for t in tables]
    first = dict(loaded[0])
    for other, path in zip(loaded[1:], tables[1:]):
        for key in ("text", "tokens", "chunks", "seed", "calibration"):
            if other.get(key) != first.get(key):
                raise SystemExit(
                    f"{path} measured {key}={other.get(key)!r}, not {first.get(key)!r}: the runs cannot be merged"
                )
    rows = {(r["scheme"], tuple(r["kept"])): r for t in loaded for r in t["rows"]}
    libraries = {k: v for t in loaded for k, v in (t.get("libraries") or {}).items()}
    for path in progress:
        for line in path.read_text(encoding="utf-8").splitlines():
            done = json.loads(line)
            rows.setdefault((done["row"]["scheme"], tuple(done["row"]["kept"])), done["row"])
            libraries.update(done.get("libraries") or {})
    order = {s: i for i, s in enumerate(SCHEMES)}
    first["rows"] = sorted(rows.values(), key=lambda r: (order[r["scheme"]], r["why"] != "weights_to_keep"))
    first["libraries"] = libraries
    first["date"] = max(t["date"] for t in loaded)
    return first


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--model-id", required=True)
    parser.add_argument(
        "--keep", nargs="*", default=[], help="modules to keep when the registry has no entry for the model yet"
    )
    parser.add_argument(
        "--hold", nargs="*", default=[], help="with --keep: weights RTN holds out, written TENSOR[ROW, COLUMN]"
    )
    parser.add_argument("--schemes", nargs="*", default=list(DEFAULT_SCHEMES), choices=list(SCHEMES))
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--calibration", type=int, default=8)
    parser.add_argument(
        "--llama-ctx", type=int, default=128, help="llama-perplexity scores the second half of each chunk"
    )
    parser.add_argument("--write", type=Path, help="registry entry to store the table in (evidence.keep_benefit)")
    parser.add_argument("--output", type=Path, help="YAML file for the table alone")
    parser.add_argument(
        "--progress",
        type=Path,
        help="JSON lines of the rows measured so far (resumed from; default in the temp folder)",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        help="instead of measuring: merge these tables (and --progress rows) and write them",
    )
    args = parser.parse_args(argv)
    if args.merge:
        from swindex.dates import today as today_
        from swindex.yamlio import dump_yaml

        merged = merge(args.merge, [args.progress] if args.progress else [])
        if args.output:
            args.output.write_text(dump_yaml(merged), encoding="utf-8")
        if args.write:
            write_entry(args.write, merged, today_())
        return 0
    import torch
    import transformers

    from swindex.dates import today as today_
    from swindex.yamlio import dump_yaml

    today = today_()
    torch.set_num_threads(2)
    subject = load(args.gguf, args.model_id, args.keep, args.chunks, args.length, args.calibration, args.hold)
    libraries = {"torch": str(torch.__version__), "transformers": str(transformers.__version__)}
    progress = args.progress or Path(tempfile.gettempdir()) / f"benefit-{args.model_id.replace('/', '--')}.jsonl"
    done = [json.loads(line) for line in progress.read_text(encoding="utf-8").splitlines()] if progress.exists() else []
    rows = [BenefitRow.from_dict(d["row"]) for d in done]
    libraries.update({k: v for d in done for k, v in d.get("libraries", {}).items()})
    todo = [s for s in args.schemes if s not in {r.scheme for r in rows}]
    say(f"{len(rows)} row(s) already measured in {progress}; measuring {', '.join(todo) or 'nothing'}")

    def keep(new: list[BenefitRow], extra: dict[str, str] | None = None) -> None:
        """Record rows as they are measured, so an interrupted run resumes where it stopped."""
        rows.extend(new)
        libraries.update(extra or {})
        with progress.open("a", encoding="utf-8") as out:
            for row in new:
                out.write(json.dumps({"row": row.to_dict(), "libraries": extra or {}}) + "\n")

    work = Path(tempfile.mkdtemp(prefix="benefit-"))
    try:
        if chosen := [s for s in todo if s in BNB]:
            keep(bnb_rows(subject, chosen, work), {"bitsandbytes": version("bitsandbytes")})
        if not LLMC_PYTHON.exists() or not (LLAMA_BIN / "llama-quantize").exists():
            missing = [
                s
                for s in todo
                if (s in LLMC and not LLMC_PYTHON.exists())
                or (s in LLAMA and not (LLAMA_BIN / "llama-quantize").exists())
            ]
            say(f"skipped for now (no {LLMC_PYTHON} or {LLAMA_BIN}; rerun to resume): {', '.join(missing)}")
            todo = [s for s in todo if s not in missing]
        if chosen := [s for s in todo if s in LLMC]:
            more, llmc_version = llmc_rows(subject, chosen, work)
            keep(more, {"llm-compressor": llmc_version})
        for scheme in [s for s in todo if s in RTN or s in ACTIVATIONS]:
            keep(torch_rows(subject, [scheme]))
        if chosen := [s for s in todo if s in LLAMA]:
            layers = sorted({int(m.split(".")[2]) for m in subject.keep_modules})
            for scheme in chosen:
                more = llama_rows(subject, [scheme], work, layers, args.chunks, args.llama_ctx)
                keep(more, {"llama.cpp": (more[-1].library or "llama.cpp unknown").split(" ", 1)[1]})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    order = {s: i for i, s in enumerate(SCHEMES)}
    rows.sort(key=lambda r: (order[r.scheme], r.why != "weights_to_keep"))
    measured = table(subject, rows, libraries, args.length, args.calibration, today)
    if args.output:
        args.output.write_text(dump_yaml(measured), encoding="utf-8")
    if args.write:
        write_entry(args.write, measured, today)
    if not args.output and not args.write:
        print(dump_yaml(measured))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
