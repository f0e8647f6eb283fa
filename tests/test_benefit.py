"""What keeping buys: the paired statistics call a planted benefit a benefit and noise noise,
and every line agrees with its table."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swindex import lookup
from swindex.benefit import (
    SCHEMES,
    TOOL_SCHEMES,
    BenefitError,
    BenefitRow,
    advice,
    advice_for_tool,
    chunk_nll_from_running_perplexity,
    paired_change,
)
from swindex.records import Entry
from swindex.validate import validate_entry_dict

nll = st.floats(min_value=1.0, max_value=8.0, allow_nan=False)
noise = st.floats(min_value=0.0, max_value=0.05, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    base=st.lists(nll, min_size=8, max_size=40),
    jitter=st.lists(noise, min_size=40, max_size=40),
    gain=st.floats(0.05, 0.5),
)
def test_a_planted_benefit_is_found_with_its_size(base, jitter, gain):
    kept = [b - gain + j for b, j in zip(base, jitter)]  # keeping lowers every chunk's NLL by about `gain`
    found = paired_change(base, kept)
    assert found.measurable and found.change < 0
    mean_jitter = sum(jitter[: len(base)]) / len(base)
    assert found.change == pytest.approx(math.exp(-gain + mean_jitter) - 1, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(base=st.lists(nll, min_size=4, max_size=40), spread=st.lists(st.floats(0.0, 0.3), min_size=2, max_size=20))
def test_pure_noise_is_no_measurable_benefit(base, spread):
    # every shift appears with both signs, so the runs differ chunk by chunk but not on average
    shifts = [s for v in spread for s in (v, -v)]
    base = (base * len(shifts))[: len(shifts)]
    found = paired_change(base, [b + s for b, s in zip(base, shifts)])
    assert not found.measurable
    assert abs(found.change) < 1e-9


def test_identical_runs_are_no_measurable_benefit():
    found = paired_change([3.0, 3.2, 2.9], [3.0, 3.2, 2.9])
    assert (found.change, found.error, found.measurable) == (0.0, 0.0, False)


def test_a_change_inside_twice_its_error_is_not_measurable():
    base = [3.0, 3.0, 3.0, 3.0]
    found = paired_change(base, [3.1, 2.95, 3.05, 2.96])  # mean +0.015, standard error about 0.035
    assert 0 < found.change < 2 * found.error
    assert not found.measurable


@pytest.mark.parametrize(
    ("base", "kept", "says"),
    [
        ([3.0], [2.0], "at least 2 chunks"),
        ([3.0, 3.1], [3.0], "different chunks"),
        ([3.0, math.inf], [3.0, 3.0], "not finite"),
    ],
)
def test_runs_that_cannot_be_paired_are_refused_in_one_line(base, kept, says):
    with pytest.raises(BenefitError, match=says) as caught:
        paired_change(base, kept)
    assert "\n" not in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(nll, min_size=1, max_size=30))
def test_chunk_nll_is_recovered_from_llama_perplexitys_running_values(chunks):
    running = [math.exp(sum(chunks[: k + 1]) / (k + 1)) for k in range(len(chunks))]
    assert chunk_nll_from_running_perplexity(running) == pytest.approx(chunks, abs=1e-7)


def _row(change: float, error: float, scheme: str = "llama.cpp-q4_0", why: str = "weights_to_keep") -> BenefitRow:
    return BenefitRow(
        scheme=scheme,
        kept=("model.layers.1.mlp.down_proj",),
        why=why,
        quantized=50.0,
        kept_perplexity=50.0 * (1 + change),
        change=change,
        error=error,
        cost_bytes=2_654_208,
        chunks=16,
        tokens=1024,
    )


@pytest.mark.parametrize(
    ("change", "error", "verdict", "words"),
    [
        (0.009, 0.011, "no measurable benefit", "no measurable benefit"),
        (-0.082, 0.011, "helps", "lowers perplexity by 8.2% ± 1.1%"),
        (0.05, 0.01, "hurts", "raises perplexity by 5.0% ± 1.0%"),
    ],
)
def test_the_advice_sentence_says_what_the_row_measured(change, error, verdict, words):
    row = _row(change, error)
    assert row.verdict == verdict
    line = advice(row)
    assert words in line and "llama.cpp Q4_0" in line and "2.5 MiB" in line and "1,024 tokens" in line


def test_no_measurable_benefit_gives_the_signed_figures():
    assert "(+0.9% ± 1.1%," in advice(_row(0.009, 0.011))


def test_every_tool_has_schemes_and_every_scheme_a_tool():
    assert {s for keys in TOOL_SCHEMES.values() for s in keys} == set(SCHEMES)
    assert {"llama.cpp", "bitsandbytes", "llm-compressor", "swindex"} <= set(TOOL_SCHEMES)


def test_a_tool_without_a_measurement_says_so():
    assert advice_for_tool(None, "llama.cpp") == [
        "what keeping buys under llama.cpp has not been measured for this model"
    ]
    with pytest.raises(BenefitError, match="no benefit schemes for tool"):
        advice_for_tool(None, "nonesuch")


def _table(*rows: BenefitRow) -> dict:
    return {
        "tool": "test",
        "date": "2026-12-05",
        "text": "everyday.txt",
        "tokens": 2032,
        "chunks": 16,
        "seed": 0,
        "libraries": {"torch": "2"},
        "rows": [r.to_dict() for r in rows],
    }


def test_an_entry_hands_out_the_row_for_keeping_its_weights(make_entry):
    peak = _row(-0.08, 0.01, "a-int8-tensor-dynamic", "input_peak")
    mine = _row(-0.02, 0.005, "a-int8-tensor-dynamic")
    entry = Entry.from_dict(make_entry(evidence={"keep_benefit": _table(peak, mine)}))
    assert entry.keep_benefit("a-int8-tensor-dynamic") == mine
    assert entry.benefit.for_scheme("a-int8-tensor-dynamic") == (mine, peak)
    assert entry.keep_benefit("bnb-nf4") is None
    with pytest.raises(BenefitError, match="unknown quantization scheme"):
        entry.keep_benefit("q3_everything")


def test_the_json_export_carries_each_rows_advice_where_keeping_helps_first(make_entry):
    rows = (_row(0.009, 0.011), _row(-0.082, 0.011, "a-int8-tensor-dynamic"), _row(-0.01, 0.002, "bnb-fp4"))
    public = Entry.from_dict(make_entry(evidence={"keep_benefit": _table(*rows)})).public_dict()
    assert [r["scheme"] for r in public["keep_benefit"]] == ["a-int8-tensor-dynamic", "bnb-fp4", "llama.cpp-q4_0"]
    assert [r["advice"] for r in public["keep_benefit"]] == [advice(rows[1]), advice(rows[2]), advice(rows[0])]
    assert public["keep_benefit"][0]["tool"] == "llm-compressor"


def test_a_table_is_valid_registry_data(make_entry):
    assert validate_entry_dict(make_entry(evidence={"keep_benefit": _table(_row(0.009, 0.011))})) == []


@pytest.mark.parametrize(
    ("edit", "field", "says"),
    [
        ({"change": 0.5}, "change", "kept_perplexity / quantized - 1"),
        ({"scheme": "q3-everything"}, "scheme", "unknown scheme"),
        ({"why": "hunch"}, "why", ""),
        ({"error": -0.1}, "error", ""),
    ],
)
def test_a_row_that_does_not_add_up_is_refused_naming_its_field(make_entry, edit, field, says):
    table = _table(_row(0.009, 0.011))
    table["rows"][0].update(edit)
    problems = validate_entry_dict(make_entry(evidence={"keep_benefit": table}))
    assert problems and all(f"rows[0].{field}" in str(p) or field in p.field for p in problems)
    assert says in " ".join(str(p) for p in problems)


MEASURED = [e for e in ("HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-Coder-0.5B-Instruct")]


@pytest.mark.parametrize("model", MEASURED)
def test_each_real_model_carries_the_table_with_the_real_libraries(model):
    try:
        entry = lookup(model)
    except KeyError:
        pytest.skip(f"{model} has no registry entry on this branch yet")
    table = entry.benefit
    assert table is not None, f"{model} carries no evidence.keep_benefit"
    schemes = {r.scheme for r in table.rows if r.why == "weights_to_keep"}
    assert len(schemes) >= 8
    assert {"a-int8-tensor-dynamic"} <= schemes
    assert schemes & set(TOOL_SCHEMES["bitsandbytes"]) and schemes & set(TOOL_SCHEMES["llm-compressor"]) & {
        "llmc-w8a8",
        "llmc-fp8",
    }
    assert schemes & set(TOOL_SCHEMES["llama.cpp"])


@pytest.mark.parametrize("model", MEASURED)
def test_every_recorded_row_says_what_its_figures_say(model):
    try:
        table = lookup(model).benefit
    except KeyError:
        pytest.skip(f"{model} has no registry entry on this branch yet")
    for row in table.rows if table else ():
        assert row.kept_perplexity / row.quantized - 1 == pytest.approx(row.change, abs=2e-4)
        assert (row.verdict == "no measurable benefit") == (abs(row.change) <= 2 * row.error)
        assert row.figures in advice(row) or row.verdict != "no measurable benefit"


def _page(entry: Entry) -> str:
    import markdown

    from swindex.sitegen.pages import SiteLinks, model_view
    from swindex.sitegen.render import environment
    from swindex.sitegen.sources import find_sources

    view = model_view(entry, SiteLinks(repo_url=None, edit_prefix=None, hub_endpoint=None))
    page = environment(find_sources().templates).get_template("model.md.j2").render(m=view, here=view.url)
    return markdown.markdown(page, extensions=["tables", "md_in_html", "attr_list", "toc"])


def test_the_model_page_shows_what_keeping_buys_where_it_helps_first(make_entry):
    rows = (
        _row(0.009, 0.011),
        _row(-0.082, 0.011, "a-int8-tensor-dynamic"),
        _row(-0.03, 0.02, "a-int8-tensor-dynamic", "input_peak"),
    )
    html = _page(Entry.from_dict(make_entry(evidence={"keep_benefit": _table(*rows)})))
    assert "What keeping buys" in html
    table = html.split('id="keep-benefit"')[1]
    assert table.index("activations INT8 per tensor, dynamic") < table.index("llama.cpp Q4_0")
    assert "-8.2% ± 1.1%" in table and "+0.9% ± 1.1%" in table and "no measurable benefit" in table
    assert "Other sites, kept instead" in table and "2.5 MiB" in table


def test_a_model_page_without_a_table_has_no_such_section(make_entry):
    assert "What keeping buys" not in _page(Entry.from_dict(make_entry()))


@pytest.mark.parametrize(
    ("bits", "block", "key"),
    [(4, 128, "rtn-w4-g128"), (4, None, "rtn-w4-tensor"), (4, "channel", "rtn-w4-channel"), (3, 64, None)],
)
def test_quantize_settings_name_the_rtn_scheme_measured(bits, block, key):
    from swindex.benefit import rtn_scheme

    assert rtn_scheme(bits, block) == key


def test_the_api_keeps_the_derived_lines_out_of_the_stored_entry(make_entry):
    from swindex.sitegen.api import stored_entry

    entry = make_entry(evidence={"keep_benefit": _table(_row(0.009, 0.011))})
    assert stored_entry(Entry.from_dict(entry).public_dict()) == entry


@pytest.mark.parametrize("tool", ["llama.cpp", "bitsandbytes", "llm-compressor"])
def test_keep_for_a_tool_prints_the_tables_lines_for_its_schemes(tool):
    from swindex.keep import keep_for

    entry = lookup("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert keep_for(entry, tool).benefit == "\n".join(advice_for_tool(entry.benefit, tool))


def test_keep_for_llama_cpp_names_the_q4_0_figures_and_whether_they_are_measurable():
    from swindex.keep import keep_for

    entry = lookup("HuggingFaceTB/SmolLM2-135M-Instruct")
    row = entry.keep_benefit("llama.cpp-q4_0")
    line = keep_for(entry, "llama.cpp").benefit.splitlines()[0]
    assert row.figures in line and (("no measurable benefit" in line) == (row.verdict == "no measurable benefit"))


def test_quantize_reports_the_row_for_its_own_bits_and_block_size():
    from swindex.benefit import rtn_scheme
    from swindex.keep import _benefit

    entry = lookup("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert _benefit(entry, "swindex", rtn_scheme(4, 128)) == advice(entry.keep_benefit("rtn-w4-g128"))
    assert _benefit(entry, "swindex", "a-fp8-tensor-dynamic") is None  # not measured on this model
