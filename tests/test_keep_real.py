"""swindex keep's exports through the real libraries, where they are installed: each keeps the module (or GGUF tensor)
it names and quantizes the rest. Skipped, with the reason, where a library is absent; the suite never needs them."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swindex.keep import keep_for

REPO = Path(__file__).resolve().parent.parent


def _tool(env: str, *candidates: Path, name: str) -> Path:
    """A tool named by an environment variable, else the shared cache's copy, else PATH; a skip saying so otherwise."""
    for path in ([Path(os.environ[env])] if os.environ.get(env) else []) + list(candidates):
        if path.is_file():
            return path
    found = shutil.which(name)
    if found:
        return Path(found)
    pytest.skip(f"{name} is not installed (set {env} to it)")


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory):
    """A small Llama with a planted super weight, saved, and its entry: enough for a library to quantize in seconds."""
    pytest.importorskip("torch")
    from fixtures_dependent import dependent_llama, entry_for

    model, planted = dependent_llama(seed=0)
    root = tmp_path_factory.mktemp("keep-real")
    model.save_pretrained(root / "model")
    return root / "model", entry_for(model, planted), planted


def test_bitsandbytes_leaves_the_skipped_module_unquantized(planted_dir):
    bnb = pytest.importorskip("bitsandbytes")
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    path, entry, planted = planted_dir
    export = keep_for(entry, "bitsandbytes")
    skip = ast.literal_eval(re.search(r"llm_int8_skip_modules=(\[.*?\])", export.text).group(1))
    config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", llm_int8_skip_modules=skip, bnb_4bit_compute_dtype=torch.float32
    )
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=config, device_map="cpu")
    (module,) = export.modules
    kept = model.get_submodule(module)
    assert type(kept) is torch.nn.Linear
    assert kept.weight[planted.index].item() == pytest.approx(planted.value)
    others = [name for name, m in model.named_modules() if name.endswith("down_proj") and name != module]
    assert others and all(isinstance(model.get_submodule(n), bnb.nn.Linear4bit) for n in others)


LLMC_SCRIPT = """
import json, sys
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype="float32")
ignore = json.loads(sys.argv[3])
recipe = QuantizationModifier(targets="Linear", scheme="W8A8", ignore=ignore)
oneshot(model=model, recipe=recipe, output_dir=sys.argv[2])
saved = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype="float32")
print(json.dumps({name: getattr(m, "quantization_scheme", None) is not None for name, m in saved.named_modules()
                  if name.endswith("down_proj")}))
"""


@pytest.mark.slow
def test_llm_compressor_oneshot_ignores_the_exported_modules(planted_dir, tmp_path):
    python = _tool("SWINDEX_LLMC_PYTHON", REPO / ".cache" / "llmc-venv" / "bin" / "python", name="llmcompressor-python")
    path, entry, _ = planted_dir
    export = keep_for(entry, "llm-compressor")
    ignore = ast.literal_eval(re.search(r"ignore=(\[.*?\])", export.text).group(1))
    run = subprocess.run(
        [str(python), "-c", LLMC_SCRIPT, str(path), str(tmp_path / "w8a8"), json.dumps(ignore)],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    quantized = json.loads(run.stdout.strip().splitlines()[-1])
    (module,) = export.modules
    assert quantized.pop(module) is False
    assert quantized and all(quantized.values())
    config = json.loads((tmp_path / "w8a8" / "config.json").read_text(encoding="utf-8"))
    assert module in config["quantization_config"]["ignore"]


@pytest.mark.slow
def test_llama_quantize_holds_the_exported_tensor_at_the_higher_type(smollm2_gguf, tmp_path):
    """On SmolLM2's Q4_1 GGUF, requantized to Q4_0: the overridden tensor is Q8_0, its neighbours Q4_0, and the file
    grows by exactly the cost the export states."""
    from gguf import GGUFReader

    from swindex import lookup

    quantize = _tool("SWINDEX_LLAMA_QUANTIZE", REPO / ".cache" / "llama-bin" / "llama-quantize", name="llama-quantize")
    env = dict(os.environ, LD_LIBRARY_PATH=f"{quantize.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    export = lookup("HuggingFaceTB/SmolLM2-135M-Instruct").keep_for("llama.cpp", base_type="Q4_0")
    overrides = [arg for pair in re.findall(r"(--tensor-type) '([^']+)'", export.text) for arg in pair]
    sizes = {}
    for name, extra in (("plain", []), ("kept", overrides)):
        out = tmp_path / f"{name}.gguf"
        run = subprocess.run(
            [str(quantize), "--allow-requantize", *extra, str(smollm2_gguf), str(out), "Q4_0", "1"],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        sizes[name] = out.stat().st_size
    types = {t.name: t.tensor_type.name for t in GGUFReader(tmp_path / "kept.gguf").tensors}
    (tensor,) = export.modules
    assert types[tensor] == "Q8_0"
    assert {types[n] for n in types if n.endswith("ffn_down.weight") and n != tensor} == {"Q4_0"}
    stated = int(next(n for n in export.notes if n.endswith("bytes")).rsplit(":", 1)[1].split()[0].replace(",", ""))
    assert sizes["kept"] - sizes["plain"] == stated


def test_the_real_library_tests_skip_cleanly_without_their_tools(monkeypatch):
    """No tool, no failure: the skip names the variable that would point at it."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("SWINDEX_NOPE", raising=False)
    with pytest.raises(pytest.skip.Exception, match="SWINDEX_NOPE"):
        _tool("SWINDEX_NOPE", Path(sys.prefix) / "no-such-tool", name="no-such-tool")
