"""Site generator pieces without MkDocs: safe links, escaping, URLs, the chart's geometry, the schema page."""

from __future__ import annotations

import copy
from html import unescape
import re

import markdown
import pytest

from swindex.claims import derive_verdict
from site_support import FIXTURE_REGISTRY, HOSTILE_ID

from swindex.errors import SwindexError
from swindex.records import Entry
from swindex.schema import entry_schema
from swindex.sitegen.chart import activation_chart, per_layer_maxima
from swindex.sitegen.pages import SiteLinks, format_parameters, model_view, size_from_name
from swindex.sitegen.render import badge, environment, impact_badge, link
from swindex.sitegen.schema_doc import schema_sections
from swindex.sitegen.sources import find_sources
from swindex.sitegen.urls import checked_id, relative
from swindex.yamlio import load_yaml

LINKS = SiteLinks(
    repo_url="https://example.org/repo", edit_prefix="https://example.org/repo/edit/main/registry/", hub_endpoint=None
)
# The extensions mkdocs.yml enables, to see what Markdown makes of a rendered page.
EXTENSIONS = ["admonition", "attr_list", "tables", "toc", "md_in_html", "pymdownx.highlight", "pymdownx.superfences"]


def _entry(model_id: str) -> Entry:
    path = FIXTURE_REGISTRY / f"{model_id}.yaml"
    return Entry.from_dict(load_yaml(path), path=f"{model_id}.yaml")


def _model_html(entry: Entry) -> str:
    view = model_view(entry, LINKS)
    page = environment(find_sources().templates).get_template("model.md.j2").render(m=view, here=view.url)
    return markdown.markdown(page, extensions=EXTENSIONS)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "http://example.org",
        "//example.org",
        'https://x.org/" onclick="alert(1)',
        " https://x.org",
        "relative/path",
        None,
        42,
    ],
)
def test_link_is_text_unless_the_url_is_plain_https(url):
    assert "<a" not in str(link(url, "label"))


def test_link_escapes_its_label_and_keeps_https_urls():
    html = str(link("https://example.org/a?b=1&c=2", "<b>x</b>"))
    assert html == '<a href="https://example.org/a?b=1&amp;c=2" rel="nofollow noopener">&lt;b&gt;x&lt;/b&gt;</a>'


def test_badge_takes_its_class_from_known_statuses_only():
    html = str(badge('x" onclick="alert(1)'))
    assert 'class="sw-badge sw-status-unknown"' in html and 'onclick="' not in html


@pytest.mark.parametrize(
    ("here", "target", "expected"),
    [
        ("", "models/a/b/", "models/a/b/"),
        ("models/a/b/", "models/", "../../"),
        ("models/a/b/", "api/v1/models/a/b.json", "../../../api/v1/models/a/b.json"),
        ("models/gpt2/", "", "../../"),
        ("schema/", "schema/", "./"),
    ],
)
def test_relative_links_between_directory_urls(here, target, expected):
    assert relative(here, target) == expected


@pytest.mark.parametrize("bad", ["../etc/passwd", "org/../../x", "/abs/path", "a/b/c", "org/name.", "", "org/<script>"])
def test_ids_that_would_leave_the_docs_directory_are_refused(bad):
    with pytest.raises(SwindexError, match="not a model id"):
        checked_id(bad, "registry/x.yaml")


@pytest.mark.parametrize(
    ("parameters", "text"), [(7241732096, "7.24B"), (124439808, "124M"), (260000, "260K"), (None, ""), (True, "")]
)
def test_parameter_counts_read_as_sizes(parameters, text):
    assert format_parameters(parameters) == text


def test_hostile_entry_renders_as_inert_text_through_markdown():
    html = _model_html(_entry(HOSTILE_ID))
    assert "<script" not in html and "<iframe" not in html and "<img" not in html and "<style" not in html
    assert 'href="javascript' not in html.lower() and 'href="data:' not in html.lower()
    assert "<strong>not bold</strong>" not in html and "**not bold**" in html
    assert "&lt;script&gt;window.__pwned=&#39;notes&#39;&lt;/script&gt;" in html


def test_unvalidated_javascript_url_is_shown_as_its_citation_text():
    data = load_yaml(FIXTURE_REGISTRY / f"{HOSTILE_ID}.yaml")
    data["claims"][0]["sources"] = [
        {"citation": "Plain citation", "kind": "blog", "evidence": "assumed", "url": "javascript:alert(1)"}
    ]
    html = _model_html(Entry.from_dict(data))
    assert "Plain citation" in html and "javascript:alert(1)" not in html


def test_model_page_offers_lookup_and_tensor_index_snippets():
    html = _model_html(_entry("huggyllama/llama-7b"))
    text = html.replace("&quot;", '"')
    assert 'lookup</span><span class="p">(</span><span class="s2">"huggyllama/llama-7b"</span>' in text
    assert '"model.layers.2.mlp.down_proj.weight"</span><span class="p">)[</span><span class="mi">3968</span>' in text


def test_model_page_shows_every_quantizer_s_snippet_for_the_weights_to_keep():
    """The same text `swindex keep --for TOOL` prints, one copyable block per tool."""
    from swindex.keep import FORMATS

    entry = _entry("huggyllama/llama-7b")
    view = model_view(entry, LINKS)
    assert [k.tool for k in view.keep] == list(FORMATS)
    assert all(k.text == entry.keep_for(k.tool).text for k in view.keep)
    html = _model_html(entry)
    assert 'id="keep-llama-cpp"' in html and 'id="keep-bitsandbytes"' in html and "Keep them when you quantize" in html
    assert "cannot keep one scalar" in html


def test_a_model_with_nothing_to_keep_shows_no_quantizer_snippets(make_entry):
    claim = dict(
        make_entry()["claims"][0],
        impact={"classification": "inert", "measured_by": "swindex"},
        status="detected",
        sources=[{"citation": "swindex", "kind": "swindex", "evidence": "detected"}],
    )
    entry = Entry.from_dict(make_entry(claims=[claim]))
    assert model_view(entry, LINKS).keep == ()
    assert "Keep them when you quantize" not in _model_html(entry)


def test_moe_snippet_indexes_expert_row_and_column():
    view = model_view(_entry("acme/tiny-moe"), LINKS)
    assert view.weights[0].index_code == 'model.get_parameter("model.layers.2.mlp.experts.down_proj")[1, 5, 9]'


def test_edit_link_is_built_from_the_repository_and_the_entry_path():
    view = model_view(_entry("mistralai/Mistral-7B-v0.1"), LINKS)
    assert view.edit_url == "https://example.org/repo/edit/main/registry/mistralai/Mistral-7B-v0.1.yaml"


def test_model_card_link_follows_the_hub_endpoint(monkeypatch):
    from huggingface_hub import constants

    from swindex.sitegen.build import site_links

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example.org")
    view = model_view(_entry("mistralai/Mistral-7B-v0.1"), site_links({"repo_url": "https://example.org/repo"}))
    assert view.hub_url == "https://hub.example.org/mistralai/Mistral-7B-v0.1"


def test_no_model_card_link_for_a_non_https_endpoint(monkeypatch):
    from huggingface_hub import constants

    from swindex.sitegen.build import site_links

    monkeypatch.setattr(constants, "ENDPOINT", "http://plain.example.org")
    assert model_view(_entry("mistralai/Mistral-7B-v0.1"), site_links({})).hub_url is None


def _detection(values_in, values_out, experts=None):
    rows = []
    for layer, (vin, vout) in enumerate(zip(values_in, values_out)):
        rows.append(
            {
                "layer": layer,
                "input_max": vin,
                "input_channel": layer,
                "input_token": 0,
                "output_max": vout,
                "output_channel": layer,
                "output_token": 0,
                "expert": experts,
            }
        )
    return {"layers": rows}


def test_chart_puts_the_highest_point_at_the_spike_layer():
    panels = activation_chart(_detection([3.0, -560.5, 4.0, 2.0], [1.0, 1313.0, 2.0, 1.5]), [1])
    for panel in panels:
        top = min(panel.points, key=lambda p: p.y)
        assert top.layer == 1 and top.marked
        assert [p.marked for p in panel.points] == [False, True, False, False]


def test_chart_axis_reaches_past_the_peak():
    (panel, _) = activation_chart(_detection([3.0, -560.5], [1.0, 2.0]), [])
    labels = [float(t.label.replace("k", "e3")) for t in panel.y_ticks]
    assert max(labels) >= 560.5 and min(labels) == 0


def test_chart_folds_experts_into_the_largest_magnitude_per_layer():
    rows = [
        {"layer": 0, "input_max": 2.0, "expert": 0},
        {"layer": 0, "input_max": -9.0, "expert": 1},
        {"layer": 1, "input_max": 3.0, "expert": 0},
    ]
    assert [
        (layer, value) for layer, value, _, _ in per_layer_maxima(rows, "input_max", "input_channel", "input_token")
    ] == [(0, -9.0), (1, 3.0)]


def test_chart_skips_values_that_are_not_numbers():
    rows = [{"layer": 0, "input_max": True}, {"layer": 1, "input_max": "big"}, {"layer": 2, "input_max": 5.0}]
    assert [layer for layer, *_ in per_layer_maxima(rows, "input_max", "input_channel", "input_token")] == [2]


def test_no_chart_without_a_detection_run():
    assert activation_chart(None, [1]) == () and activation_chart({"layers": []}, [1]) == ()


def _objects(node, found):
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            found.append(set(node["properties"]))
        for value in node.values():
            _objects(value, found)
    return found


def test_schema_page_documents_every_field_of_every_object():
    documented = [{f.name for f in section.fields} for section in schema_sections(entry_schema())]
    for fields in _objects(copy.deepcopy(entry_schema()), []):
        assert fields in documented


def test_schema_page_uses_the_schema_descriptions():
    entry = schema_sections(entry_schema())[0]
    aliases = next(f for f in entry.fields if f.name == "aliases")
    assert aliases.description == entry_schema()["properties"]["aliases"]["description"]
    assert aliases.type == "list of string"
    claims = next(f for f in entry.fields if f.name == "claims")
    assert claims.type == "list of object (claims[])" and claims.required


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("llama-7b", "7B", 7e9),
        ("SmolLM2-135M", "135M", 1.35e8),
        ("Mixtral-8x7B-v0.1", "8x7B", 5.6e10),
        ("Qwen2.5-0.5B", "0.5B", 5e8),
        ("llava-1.5-7b-hf", "7B", 7e9),
        ("Phi-3-mini-4k-instruct", "", 0.0),
        ("gpt2", "", 0.0),
    ],
)
def test_size_is_read_from_the_name_when_the_entry_has_no_parameter_count(name, text, value):
    assert size_from_name(name) == (text, pytest.approx(value))


def test_a_recorded_parameter_count_wins_over_the_name():
    view = model_view(_entry("mistralai/Mistral-7B-v0.1"), LINKS)
    assert (view.size, view.size_value, view.size_from_name) == ("7.24B", 7241732096.0, False)


def test_weight_values_render_exactly_as_recorded():
    from swindex.sitegen.render import number

    assert number(0.63232421875) == "0.63232421875"
    assert float(number(7.914802074432373)) == 7.914802074432373


def test_measured_figures_read_in_four_significant_digits_with_the_exact_value_in_the_tooltip():
    from swindex.sitegen.render import measured

    assert (
        str(measured(0.0028958851883300815))
        == '<span class="sw-measured" title="0.0028958851883300815">0.002896</span>'
    )
    assert str(measured(None)) == "—" and str(measured(7)) == "7"


def _verified_html(make_entry, metric: str, impact: dict) -> str:
    data = make_entry()
    data["claims"][0]["impact"] = {"classification": "critical", "measured_by": "swindex", "metric": metric, **impact}
    data["evidence"] = {
        "verification": {
            "tool": "swindex verify 0.1.0",
            "date": "2030-01-01",
            "metric": metric,
            "original": 1.0,
            "all_zeroed": 2.0,
        }
    }
    data["verdict"] = derive_verdict(data)
    return _model_html(Entry.from_dict(data))


def test_encoder_impact_shows_the_similarity_shift_rather_than_repeating_the_embedding_shift(make_entry):
    html = _verified_html(
        make_entry, "embedding_shift", {"zeroed": 0.123456789, "ratio": 0.123456789, "similarity_shift": 0.0456789}
    )
    assert "Embedding shift (mean cosine distance)" in html and "Similarity shift" in html
    assert html.count(">0.1235<") == 1 and ">0.04568<" in html
    assert "× original perplexity" not in html


def test_causal_lm_impact_shows_the_perplexity_ratio(make_entry):
    html = _verified_html(make_entry, "perplexity", {"zeroed": 812.25, "ratio": 142.5})
    assert "× original perplexity" in html and ">142.5<" in html and ">812.2<" in html
    assert "Similarity shift" not in html
    assert "critical</em> from 2.0× the original perplexity" in html


def test_a_ratio_settled_on_part_of_the_text_shows_its_bound_on_the_model_page(make_entry):
    bound = {"low": 2.796, "high": 6.419, "confidence": 0.999}
    html = _verified_html(make_entry, "perplexity", {"zeroed": 24.9, "ratio": 4.236, "tokens": 762, "bound": bound})
    assert "an estimate, settled after 762 tokens: 99.9% bound [2.796, 6.419]" in html
    shown = unescape(html)
    assert "critical ~×4.24" in shown and '>~<span class="sw-measured" title="4.236">4.236</span>' in shown


def test_a_model_page_with_disagreements_points_to_them_from_the_top(make_entry):
    data = make_entry(
        disagreements=[
            {
                "summary": "Two papers disagree.",
                "claims": ["model.layers.1.mlp.down_proj.weight[3, 7]"],
                "resolution": None,
            }
        ]
    )
    html = _model_html(Entry.from_dict(data))
    assert html.index('href="#disagreements"') < html.index("Coordinates")
    assert 'id="disagreements"' in html
    assert 'href="#disagreements"' not in _model_html(Entry.from_dict(make_entry()))


@pytest.mark.parametrize(
    ("detected", "findings", "says", "never"),
    [
        (True, False, "swindex scanned this model and found no super weight", "has not scanned"),
        (False, True, "No scalar coordinate has been published", "found no super weight"),
        (False, False, "swindex has not scanned it", "found no super weight"),
    ],
    ids=["scanned", "row-level-findings-only", "nothing-recorded"],
)
def test_a_model_without_coordinates_says_whether_it_was_scanned(make_entry, detected, findings, says, never):
    sources = copy.deepcopy(make_entry()["claims"][0]["sources"])
    data = make_entry(claims=[])
    data.pop("evidence", None)
    if findings:
        data["other_findings"] = [{"kind": "row", "layer": 2, "row": 3968, "status": "reported", "sources": sources}]
    if detected:
        data["evidence"] = {
            "detection": load_yaml(FIXTURE_REGISTRY / "acme" / "clean-model.yaml")["evidence"]["detection"]
        }
    html = _model_html(Entry.from_dict(data))
    assert says in html and never not in html


def test_text_hides_fences_and_attribute_lists_from_markdown_but_not_from_the_reader():
    from html import unescape

    from swindex.sitegen.render import as_text

    text = "a\n``` { #__config }\n~~~ {: .x }\n<b>&"
    out = str(as_text(text))
    assert "`" not in out and "~" not in out and "{" not in out and "}" not in out and "<b>" not in out
    assert unescape(out) == text


def test_impact_badge_takes_its_class_from_known_impacts_only_and_shows_the_figure():
    from swindex.sitegen.render import impact_badge

    assert 'class="sw-badge sw-impact sw-impact-critical"' in str(
        impact_badge({"classification": "critical", "metric": "perplexity", "ratio": 213.6})
    )
    assert "critical ×213.6" in str(
        impact_badge({"classification": "critical", "metric": "perplexity", "ratio": 213.6})
    )
    hostile = str(impact_badge({"classification": 'x" onclick="alert(1)'}))
    assert "sw-impact-unknown" in hostile and 'onclick="' not in hostile


# Every field that reaches a page, each carrying fences: an unclosed ``` { .text .md-toggle } would swallow the
# sections after it, and ``` { #__config } would give an element the theme's configuration id.
FENCED_FIELDS = [
    ("notes",),
    ("family",),
    ("aliases", 0),
    ("revision",),
    ("modified",),
    ("architecture",),
    ("verdict", "measured_by"),
    ("claims", 0, "notes"),
    ("claims", 0, "value_dtype"),
    ("claims", 0, "impact", "note"),
    ("claims", 0, "impact", "measured_by"),
    ("claims", 0, "sources", 0, "citation"),
    ("claims", 0, "sources", 0, "quote"),
    ("claims", 0, "sources", 0, "effect"),
    ("claims", 0, "sources", 0, "date"),
    ("claims", 0, "sources", 0, "kind"),
    ("claims", 0, "sources", 0, "evidence"),
    ("claims", 0, "sources", 0, "measurements", "note"),
    ("claims", 0, "sources", 0, "measurements", None),
    ("claims", 0, "evidence", "detection", "token"),
    ("disagreements", 0, "summary"),
    ("disagreements", 0, "resolution"),
    ("disagreements", 0, "claims", 0),
    ("other_findings", 0, "kind"),
    ("other_findings", 0, "module"),
    ("other_findings", 0, "notes"),
    ("other_findings", 0, "sources", 0, "quote"),
    ("evidence", "detection", "tool"),
    ("evidence", "detection", "date"),
    ("evidence", "detection", "dtype"),
    ("evidence", "detection", "device"),
    ("evidence", "detection", "revision"),
    ("evidence", "detection", "method"),
    ("evidence", "detection", "prompt"),
    ("evidence", "detection", "notes"),
    ("evidence", "verification", "tool"),
    ("evidence", "verification", "date"),
    ("evidence", "verification", "dtype"),
    ("evidence", "verification", "text"),
    ("evidence", "verification", "revision"),
    ("evidence", "verification", "notes"),
    ("evidence", "verification", "fingerprint", "mismatches", 0),
    ("evidence", "verification", "stopword_shift", None),
]


def _full_entry() -> dict:
    """An entry in which every text field is present, so each can carry the payload in turn."""
    data = load_yaml(FIXTURE_REGISTRY / "huggyllama" / "llama-7b.yaml")
    claim = data["claims"][0]
    claim["notes"] = "claim notes"
    claim["value"] = -0.0234
    claim["value_dtype"] = "float16"
    claim["impact"]["note"] = "impact note"
    claim["sources"][0].update(effect="effect", date="2024-11-11", measurements={"note": "measured"})
    claim["evidence"] = {
        "detection": {"iteration": 1, "input_activation": -560.5, "output_activation": 1313.0, "token": 1}
    }
    data["notes"] = "entry notes"
    data["disagreements"] = [
        {"summary": "summary", "claims": [claim["tensor"] + "[3968, 7003]"], "resolution": "resolution"}
    ]
    data["other_findings"] = [
        {
            "kind": "row",
            "layer": 2,
            "row": 3968,
            "module": "model.layers.2.mlp",
            "status": "reported",
            "notes": "finding notes",
            "sources": [dict(claim["sources"][0], quote="finding quote")],
        }
    ]
    detection = load_yaml(FIXTURE_REGISTRY / "acme" / "clean-model.yaml")["evidence"]["detection"]
    detection.update(device="cpu", revision="main", method="spike", prompt="prompt", notes="detector notes")
    data["evidence"] = {
        "detection": detection,
        "verification": {
            "tool": "swindex verify",
            "date": "2030-01-01",
            "dtype": "float32",
            "metric": "perplexity",
            "text": "wiki",
            "revision": "main",
            "original": 5.0,
            "all_zeroed": 50.0,
            "notes": "verify notes",
            "fingerprint": {"matches": False, "mismatches": ["mismatch"]},
            "stopword_shift": {"the": -0.1},
        },
    }
    data["verdict"]["measured_by"] = "measurer"
    return data


def _put(data, path, value):
    *parents, last = path
    node = data
    for part in parents:
        node = node[part]
    if last is None:  # the payload as a key of this mapping
        node[value] = 1.0
    elif isinstance(node[last], (int, float)) and not isinstance(node[last], bool):
        node[last] = value  # a number field holding text: an unvalidated build must still show it as text
    else:
        node[last] = value


@pytest.mark.parametrize("path", FENCED_FIELDS, ids=lambda p: ".".join(str(x) for x in p))
def test_fences_in_any_field_stay_text_on_the_model_page(path):
    import re
    from html import unescape

    marker = "marker" + "-".join(str(x) for x in path)
    payload = f"{marker}\n``` {{ #__config }}\n{marker}-inside\n```\n~~~ {{ .text .md-toggle }}\n"
    data = _full_entry()
    _put(data, path, payload)
    html = _model_html(Entry.from_dict(data))
    assert 'id="__config"' not in html and not re.search(r'class="[^"]*md-toggle', html)
    assert '<h2 id="impact-of-removing-it"' in html and '<h2 id="disagreements"' in html and '<h2 id="notes"' in html
    assert f"{marker}-inside" in unescape(html)  # the field reached the page, as text


def test_without_the_escaping_the_same_payload_breaks_the_page():
    """The control for the test above: Markdown inside HTML blocks is not enough on its own."""
    import re

    data = _full_entry()
    _put(data, ("claims", 0, "notes"), "x\n``` { #__config }\ny\n```\n~~~ { .text .md-toggle }\n")
    view = model_view(Entry.from_dict(data), LINKS)
    env = environment(find_sources().templates)
    env.finalize = None
    page = env.get_template("model.md.j2").render(m=view, here=view.url)
    html = markdown.markdown(page, extensions=EXTENSIONS)
    assert 'id="__config"' in html or '<h2 id="disagreements"' not in html or re.search(r'class="[^"]*md-toggle', html)


def test_fences_in_aliases_and_family_stay_text_in_the_models_table():
    import re
    from html import unescape

    from swindex.sitegen.api import totals

    data = _full_entry()
    data["aliases"] = ["a\n``` { #__config }\nalias-inside\n```\n"]
    data["family"] = "f\n~~~ { .text .md-toggle }\nfamily-inside\n~~~\n"
    views = [model_view(Entry.from_dict(data), LINKS)]
    page = (
        environment(find_sources().templates)
        .get_template("models.md.j2")
        .render(views=views, totals=totals(views), here="models/")
    )
    html = markdown.markdown(page, extensions=EXTENSIONS)
    assert 'id="__config"' not in html and not re.search(r'class="[^"]*md-toggle', html)
    assert "alias-inside" in unescape(html) and "family-inside" in unescape(html)


def test_a_source_with_per_layer_measurements_is_charted_under_its_citation():
    from swindex.sitegen.chart import layer_measurements

    entry = _entry("huggyllama/llama-7b")
    source = next(s for s in entry.to_dict()["claims"][0]["sources"] if s.get("measurements"))
    rows = layer_measurements(source["measurements"])
    assert [r["layer"] for r in rows] == sorted(r["layer"] for r in rows) and len(rows) >= 2
    view = model_view(entry, LINKS)
    (chart,) = view.source_charts
    assert chart.citation == source["citation"] and [p.key for p in chart.panels] == ["input", "output"]
    assert (
        chart.panels[1].peak.layer == 2 and chart.panels[1].peak.value == source["measurements"]["layer_2_output_max"]
    )
    html = _model_html(entry)
    assert "Published by" in html and 'id="sw-source-1-sw-chart-input-title"' in html
    assert "layer_2_output_max" not in html  # charted, not listed; other measurements are still listed
    assert "down_proj_output_max" in html


def test_per_layer_measurement_names_follow_one_convention():
    from swindex.sitegen.chart import layer_measurements

    rows = layer_measurements(
        {
            "layer_0_input_max": 1.0,
            "layer_1_output_max": -2.0,
            "layer_1_output_channel": 7,
            "layer_01_input_max": 9.0,
            "layers_2_input_max": 3.0,
            "layer_3_input_channel": "x",
        }
    )
    assert rows == [{"layer": 0, "input_max": 1.0}, {"layer": 1, "output_max": -2.0, "output_channel": 7}]


def test_one_published_layer_is_not_a_chart():
    data = _full_entry()
    data["claims"][0]["sources"] = [
        dict(s, measurements={"layer_2_output_max": 1313.0}) for s in data["claims"][0]["sources"]
    ]
    assert model_view(Entry.from_dict(data), LINKS).source_charts == ()


def test_the_same_source_on_several_claims_is_charted_once(make_entry):
    data = _full_entry()
    data["claims"].append(dict(copy.deepcopy(data["claims"][0]), row=1, column=2, index=[1, 2]))
    assert len(model_view(Entry.from_dict(data), LINKS).source_charts) == 1


# Enums: the schema is their one home; templates and the API read them (render's globals, swindex.records).

_OUTCOME = entry_schema()["$defs"]["verdict"]["properties"]["outcome"]
ENUMS = {
    "status": entry_schema()["$defs"]["status"]["enum"],
    "impact": entry_schema()["$defs"]["impact"]["properties"]["classification"]["enum"],
    "outcome": _OUTCOME["enum"],
    "derived verdict": entry_schema()["$defs"]["derived_check"]["properties"]["verdict"]["enum"],
}


def _spelled_lists(text: str, values: list[str]) -> list[str]:
    """Enum values written out as a list: two or more quoted ones in a row (code), or every value (prose)."""
    words = "|".join(sorted(map(re.escape, values), key=len, reverse=True))
    quoted = rf"""['"](?:{words})['"]"""
    bare = rf"""`?\b(?:{words})\b`?"""
    found = [m.group(0) for m in re.finditer(rf"{quoted}(?:\s*,\s*{quoted})+", text)]
    for m in re.finditer(rf"{bare}(?:\s*(?:,|\bor\b|\band\b)\s*{bare})+", text):
        if set(re.findall(rf"\b(?:{words})\b", m.group(0))) == set(values):
            found.append(m.group(0))
    return found


def _enum_readers() -> list:
    from pathlib import Path

    import swindex.sitegen.api

    return [*sorted(find_sources().templates.glob("*.j2")), Path(swindex.sitegen.api.__file__)]


@pytest.mark.parametrize("enum", sorted(ENUMS))
@pytest.mark.parametrize("path", _enum_readers(), ids=lambda path: path.name)
def test_no_template_or_api_module_spells_an_enum_out_by_hand(enum, path):
    assert _spelled_lists(path.read_text(encoding="utf-8"), ENUMS[enum]) == []


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ('v in ("super_weights", "no_critical_weight") else', ENUMS["outcome"]),
        ("its impact (critical, significant, inert, unmeasured) says", ENUMS["impact"]),
        ("[s for s in ('confirmed', 'reported') if s]", ENUMS["status"]),
    ],
)
def test_the_enum_scan_finds_a_list_written_by_hand(text, values):
    """The scan above can fail: each way of spelling an enum out is caught."""
    assert _spelled_lists(text, values) != []


@pytest.mark.parametrize("annotation", ["x-labels", "x-counts", "x-meanings"])
def test_each_outcome_has_its_words_in_the_schema(annotation):
    assert list(_OUTCOME[annotation]) == _OUTCOME["enum"]


def test_each_impact_class_has_its_meaning_in_the_schema():
    classification = entry_schema()["$defs"]["impact"]["properties"]["classification"]
    assert list(classification["x-meanings"]) == classification["enum"]


@pytest.mark.parametrize("classification", ENUMS["impact"])
def test_an_impact_badge_says_what_its_class_means(classification):
    from markupsafe import escape

    meaning = entry_schema()["$defs"]["impact"]["properties"]["classification"]["x-meanings"][classification]
    assert f'title="impact: {escape(meaning)}"' in str(impact_badge({"classification": classification}))


def _empty_totals() -> dict:
    from swindex.sitegen.api import totals

    return totals([])


def test_the_models_filter_offers_every_outcome_the_schema_has():
    page = environment(find_sources().templates).get_template("models.md.j2").render(views=[], totals=_empty_totals())
    filter_options = page[page.index('id="sw-verdict-filter"') : page.index("</select>")]
    assert re.findall(r'<option value="(\w+)">', filter_options) == ENUMS["outcome"]


def test_the_home_page_explains_every_outcome_and_status_the_schema_has():
    from markupsafe import escape

    from swindex.sitegen.build import _status_meanings

    page = (
        environment(find_sources().templates)
        .get_template("home.md.j2")
        .render(
            views=[],
            totals=_empty_totals(),
            status_counts=[],
            status_meanings=_status_meanings(),
            oneliner="x",
            here="",
        )
    )
    for outcome in ENUMS["outcome"]:
        assert f"<dd>{escape(_OUTCOME['x-meanings'][outcome])}." in page
        assert f'href="models/?verdict={outcome}"' in page
    for status, meaning in entry_schema()["$defs"]["status"]["x-meanings"].items():
        assert f"{escape(meaning)}." in page and f"sw-status-{status}" in page
    assert ", ".join(ENUMS["impact"]) in page


def test_a_ratio_settled_on_part_of_the_text_reads_as_an_estimate() -> None:
    from swindex.sitegen.render import impact_figure

    bound = {"low": 2.796, "high": 6.419, "confidence": 0.999}
    assert impact_figure({"metric": "perplexity", "ratio": 4.236, "tokens": 762, "bound": bound}) == "~×4.24"
    assert impact_figure({"metric": "perplexity", "ratio": 4.2396, "tokens": 2032}) == "×4.24"
