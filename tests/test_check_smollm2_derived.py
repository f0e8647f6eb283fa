"""The real thing: SmolLM2-135M-Instruct's derived checkpoints get kept / degraded / lost as their perplexity says.

Issue 18's table, rebuilt from the float32 conversion of the registry's own GGUF: the critical weight
layer 11 [507, 1229] as a fine-tune leaves it (-8.6%), scaled x0.3, x0.05, and zeroed. Each is saved as a
safetensors folder, checked without --base (the entry is inferred), and its perplexity measured with a plain
transformers forward pass over the shipped evaluation text: not with the curve check reads its verdict from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from swindex.checkpoint import KEPT_CHANGE, LOST_RATIO, check

pytestmark = pytest.mark.slow

NAME = "model.layers.11.mlp.down_proj.weight"
ROW, COLUMN = 507, 1229
FACTORS = {"fine-tune-like -8.6%": 1 - 0.086, "scaled x0.3": 0.3, "scaled x0.05": 0.05, "zeroed": 0.0}


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf: Path) -> Any:
    """The GGUF loaded by transformers as float32, the windows perplexity is measured on, and its perplexity there."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from swindex.verification.inputs import eval_text

    model = transformers.AutoModelForCausalLM.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name, dtype=torch.float32
    ).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    ids = tokenizer(eval_text(), return_tensors="pt").input_ids[0]
    windows = torch.stack(
        [torch.cat([torch.tensor([tokenizer.bos_token_id]), ids[i * 127 : (i + 1) * 127]]) for i in range(16)]
    )
    return model, windows, perplexity(model, windows)


def perplexity(model: Any, windows: Any) -> float:
    import torch

    nll, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(windows), 4):
            batch = windows[start : start + 4]
            logits = model(batch).logits[:, :-1]
            nll += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
            ).item()
            count += batch[:, 1:].numel()
    return math.exp(nll / count)


def saved(model: Any, folder: Path) -> Path:
    """The model as a safetensors folder (the GGUF quantizer's settings dropped: the weights are float32 now)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (folder / "config.json").write_text(
        __import__("json").dumps({**config, "architectures": ["LlamaForCausalLM"]}), encoding="utf-8"
    )
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"},
        str(folder / "model.safetensors"),
    )
    return folder


@pytest.mark.parametrize("variant", list(FACTORS))
def test_the_verdict_agrees_with_the_measured_perplexity(smollm2: Any, tmp_path: Path, variant: str) -> None:
    import torch

    model, windows, base = smollm2
    weight = model.get_parameter(NAME)
    original = weight[ROW, COLUMN].item()
    with torch.no_grad():
        weight[ROW, COLUMN] = original * FACTORS[variant]
    try:
        measured = perplexity(model, windows) / base
        report = check(saved(model, tmp_path / "derived"))
    finally:
        with torch.no_grad():
            weight[ROW, COLUMN] = original
    expected = "kept" if measured < 1 + KEPT_CHANGE else "degraded" if measured < LOST_RATIO else "lost"
    critical = next(w for w in report.weights if w.coordinate == f"{NAME}[{ROW}, {COLUMN}]")
    assert report.entry == "HuggingFaceTB/SmolLM2-135M-Instruct" and report.entry_rule == "shape"
    assert critical.verdict == expected, (
        f"{variant}: perplexity x{measured:.3f}, check says {critical.verdict} ({critical.reason})"
    )
    assert report.verdict == expected


def test_the_float32_folder_itself_is_kept(smollm2: Any, tmp_path: Path) -> None:
    model, _, _ = smollm2
    report = check(saved(model, tmp_path / "f32"))
    assert (report.entry, report.verdict, report.exit_status) == ("HuggingFaceTB/SmolLM2-135M-Instruct", "kept", 0)


def test_the_gguf_itself_is_checked_against_the_entry_recording_its_sha256(smollm2_gguf: Path) -> None:
    report = check(smollm2_gguf)
    assert (report.entry, report.entry_rule, report.verdict) == (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "sha256",
        "kept",
    )
