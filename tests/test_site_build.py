"""`swindex site build` end to end: pages, the JSON API, strict MkDocs, extra pages and the real registry."""

from __future__ import annotations

import json
import re
from html import unescape
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from site_support import FIXTURE_REGISTRY, HOSTILE_ID, REPO, fixture_site

from swindex.cli import main
from swindex.errors import SwindexError, ValidationError
from swindex.migrate import downgrade
from swindex.records import OUTCOMES, Entry
from swindex.schema import entry_schema
from swindex.sitegen.api import stored_entry
from swindex.sitegen.build import build_site, generated_time, v1_schema
from swindex.sitegen.sources import find_sources
from swindex.validate import entry_files
from swindex.yamlio import load_yaml

API = "api/v2"
V1 = "api/v1"
SITE_URL = load_yaml(REPO / "mkdocs.yml")["site_url"]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _fixture_ids() -> list[str]:
    return sorted((load_yaml(p)["id"] for p in entry_files(FIXTURE_REGISTRY)), key=str.casefold)


def _json(path: str, root: str = API):
    return json.loads((fixture_site() / root / path).read_text(encoding="utf-8"))


def _entry(model_id: str) -> Entry:
    return Entry.from_dict(load_yaml(FIXTURE_REGISTRY / f"{model_id}.yaml"))


def _local(url: str) -> Path:
    """A published absolute URL as the file it names in the built site."""
    assert url.startswith(SITE_URL), url
    return fixture_site() / url[len(SITE_URL) :]


@pytest.mark.parametrize(
    "document", ["models.json", "all.json", "schema.json", "models/mistralai/Mistral-7B-v0.1.json"]
)
def test_every_api_document_carries_schema_version_and_generation_time(document):
    data = _json(document)
    assert data["schema_version"] == entry_schema()["properties"]["schema_version"]["const"]
    assert STAMP.match(data["generated"])


@pytest.mark.parametrize(
    "document", ["models.json", "all.json", "schema.json", "models/mistralai/Mistral-7B-v0.1.json"]
)
def test_every_v1_document_says_schema_version_1(document):
    data = _json(document, V1)
    assert data["schema_version"] == 1 and STAMP.match(data["generated"])


def test_api_index_lists_every_model_in_id_order():
    assert [m["id"] for m in _json("models.json")["models"]] == _fixture_ids()


def test_api_index_summarises_each_model():
    summary = next(m for m in _json("models.json")["models"] if m["id"] == "mistralai/Mistral-7B-v0.1")
    assert summary["organisation"] == "mistralai" and summary["family"] == "mistral"
    assert (summary["claims"], summary["layers"], summary["statuses"]) == (1, [1], ["confirmed"])
    assert summary["super_weights"] == ["model.layers.1.mlp.down_proj.weight[2070, 7310]"]
    assert summary["verdict"]["text"] == "1 super weight"
    assert summary["size"] == "7.24B" and summary["scanned"] is True


def test_api_index_says_which_models_swindex_scanned():
    for model in _json("models.json")["models"]:
        entry = load_yaml(FIXTURE_REGISTRY / f"{model['id']}.yaml")
        assert model["scanned"] is bool((entry.get("evidence") or {}).get("detection"))


def test_api_index_counts_super_weights_as_lookup_does_apart_from_all_claims():
    for model in _json("models.json")["models"]:
        entry = Entry.from_dict(load_yaml(FIXTURE_REGISTRY / f"{model['id']}.yaml"))
        assert model["claims"] == len(entry.claims)
        assert model["super_weights"] == [c.coordinate for c in entry.super_weights]
        assert model["layers"] == list(entry.layers)
        assert model["verdict"]["text"] == entry.verdict.text


def test_api_index_links_are_absolute_and_resolve_to_documents_and_pages():
    for model in _json("models.json")["models"]:
        assert _local(model["url"]).is_file()
        assert (_local(model["page"]) / "index.html").is_file()


@pytest.mark.parametrize("document", ["models.json", "all.json", "models/huggyllama/llama-7b.json"])
def test_every_link_the_api_makes_is_absolute_under_the_site_url(document):
    data = _json(document)
    made = [data.get("url"), data.get("page"), *(data.get("links") or {}).values()]
    for item in data.get("models") or data.get("entries") or []:
        made += [item["url"], item["page"]]
    made = [u for u in made if u is not None]
    assert made and all(u.startswith(SITE_URL) for u in made)
    assert all(_local(u).exists() or (_local(u) / "index.html").is_file() for u in made)


def test_api_index_totals_count_models_by_verdict_and_super_weights_as_lookup_does():
    entries = [_entry(i) for i in _fixture_ids()]
    totals = _json("models.json")["totals"]
    assert totals["models"] == len(entries)
    assert totals["outcomes"] == {o: sum(e.verdict.outcome == o for e in entries) for o in OUTCOMES}
    assert totals["super_weights"] == sum(len(e.super_weights) for e in entries)
    assert totals["claims"] == sum(len(e.claims) for e in entries)


@pytest.mark.parametrize("model_id", _fixture_ids())
def test_api_model_document_is_the_entry_in_pythons_field_names(model_id):
    document = _json(f"models/{model_id}.json")
    entry = _entry(model_id)
    assert document["entry"] == entry.public_dict()
    assert document["entry"]["super_weights"] == [c.coordinate for c in entry.super_weights]
    assert document["entry"]["verdict"]["text"] == entry.verdict.text
    assert document["path"] == f"registry/{model_id}.yaml"


@pytest.mark.parametrize("model_id", _fixture_ids())
def test_api_entry_without_its_derived_fields_is_the_registry_file(model_id):
    assert stored_entry(_json(f"models/{model_id}.json")["entry"]) == load_yaml(FIXTURE_REGISTRY / f"{model_id}.yaml")


def test_api_full_dump_holds_every_entry():
    dump = _json("all.json")
    assert dump["count"] == len(dump["entries"]) == len(_fixture_ids())
    assert {e["entry"]["id"] for e in dump["entries"]} == set(_fixture_ids())
    assert all(e["entry"] == _entry(e["entry"]["id"]).public_dict() for e in dump["entries"])


def test_api_schema_is_a_valid_schema_that_accepts_the_registry():
    schema = _json("schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in entry_files(FIXTURE_REGISTRY):
        if HOSTILE_ID not in path.as_posix():
            validator.validate(load_yaml(path))
    assert {k: v for k, v in schema.items() if k not in ("schema_version", "generated")} == entry_schema()


@pytest.mark.parametrize("model_id", _fixture_ids())
def test_v1_model_document_is_the_entry_downgraded_to_schema_1(model_id):
    document = _json(f"models/{model_id}.json", V1)
    assert document["entry"] == downgrade(load_yaml(FIXTURE_REGISTRY / f"{model_id}.yaml"))
    assert document["entry"]["schema_version"] == 1 and "claims" not in document["entry"]


def test_v1_documents_follow_schema_1_as_it_was_published():
    schema = _json("schema.json", V1)
    assert {k: v for k, v in schema.items() if k not in ("schema_version", "generated")} == v1_schema()
    assert schema["$id"].endswith("/api/v1/schema.json")
    validator = jsonschema.Draft202012Validator(schema)
    for item in _json("all.json", V1)["entries"]:
        if item["entry"]["id"] != HOSTILE_ID:
            validator.validate(item["entry"])


def test_v1_restores_inert_statuses_from_the_measured_impact():
    entry = _json("models/acme/candidates-model.json", V1)["entry"]
    assert [c["status"] for c in entry["super_weights"]] == ["detected", "inert"]
    summary = next(m for m in _json("models.json", V1)["models"] if m["id"] == "acme/candidates-model")
    assert (summary["super_weights"], summary["standing"], summary["statuses"]) == (2, 1, ["detected", "inert"])


def test_v1_index_keeps_its_relative_links():
    for model in _json("models.json", V1)["models"]:
        assert not model["url"].startswith("http") and (fixture_site() / V1 / model["url"]).is_file()
        assert (fixture_site() / V1 / model["page"] / "index.html").resolve().is_file()


def test_api_page_says_until_when_v1_is_kept():
    html = (fixture_site() / "api" / "index.html").read_text(encoding="utf-8")
    assert "kept until 2027-06-30" in html and "inert" in html


@pytest.mark.parametrize("model_id", _fixture_ids())
def test_every_model_gets_a_page_titled_by_its_id(model_id):
    html = (fixture_site() / "models" / model_id / "index.html").read_text(encoding="utf-8")
    assert f"<title>{model_id} - " in html


def test_search_index_holds_aliases_family_and_organisation():
    docs = json.loads((fixture_site() / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    page = " ".join(
        d["text"] + d["title"] for d in docs if d["location"].startswith("models/meta-llama/Llama-2-7b-hf/")
    )
    assert "Llama-2-7b" in page and "meta-llama" in page and "llama" in page


def test_models_table_is_left_out_of_search():
    docs = json.loads((fixture_site() / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    assert any(d["location"].startswith("models/mistralai/") for d in docs)
    assert all(not d["location"].startswith("models/#") and d["location"] != "models/" for d in docs)


def test_home_page_shows_the_one_line_lookup():
    html = (fixture_site() / "index.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", html).replace("&quot;", '"')
    assert 'from swindex import lookup; sw = lookup("huggyllama/llama-7b").super_weights[0]' in text


@pytest.mark.parametrize("status", entry_schema()["$defs"]["status"]["enum"])
def test_home_page_gives_every_status_its_meaning_from_the_schema(status):
    meaning = entry_schema()["$defs"]["status"]["x-meanings"][status]
    text = unescape(re.sub(r"<[^>]+>", "", (fixture_site() / "index.html").read_text(encoding="utf-8")))
    assert f"{meaning}." in text and f"{status} ." not in text


def test_the_schema_gives_a_meaning_to_each_status_and_no_other():
    status = entry_schema()["$defs"]["status"]
    assert list(status["x-meanings"]) == status["enum"]


def test_generated_time_follows_source_date_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764288000")
    assert generated_time() == "2025-11-28T00:00:00Z"


def test_build_refuses_an_invalid_registry(tmp_path):
    with pytest.raises(ValidationError, match="hostile-model"):
        build_site(FIXTURE_REGISTRY, tmp_path / "out")


def test_missing_registry_is_reported(tmp_path):
    with pytest.raises(SwindexError, match="registry directory not found"):
        build_site(tmp_path / "nowhere", tmp_path / "out")


def _sources_copy(tmp_path: Path) -> Path:
    root = tmp_path / "sources"
    root.mkdir()
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copytree(REPO / "site", root / "site", ignore=shutil.ignore_patterns("quantization.*"))
    return root


def test_extra_pages_join_the_navigation_with_their_assets(tmp_path, make_entry, write_registry):
    root = _sources_copy(tmp_path)
    (root / "site" / "pages" / "report.md").write_text(
        "# Quantization report\n\n![chart](../assets/report.svg)\n", encoding="utf-8"
    )
    (root / "site" / "assets" / "report.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>', encoding="utf-8")
    out = build_site(write_registry(make_entry()), tmp_path / "out", sources=find_sources(root)).output
    assert (out / "pages" / "report" / "index.html").is_file() and (out / "assets" / "report.svg").is_file()
    assert "Quantization report" in (out / "index.html").read_text(encoding="utf-8")  # in the navigation


def test_a_broken_link_fails_the_strict_build(tmp_path, make_entry, write_registry):
    root = _sources_copy(tmp_path)
    (root / "site" / "pages" / "broken.md").write_text("# Broken\n\n[gone](missing.md)\n", encoding="utf-8")
    with pytest.raises(SwindexError, match="strict"):
        build_site(write_registry(make_entry()), tmp_path / "out", sources=find_sources(root))


def test_sources_must_hold_mkdocs_yml_and_templates(tmp_path):
    with pytest.raises(SwindexError, match="no site sources"):
        find_sources(tmp_path)


def test_cli_builds_a_site_from_another_registry(tmp_path, make_entry, write_registry, capsys):
    registry = write_registry(make_entry(), make_entry(id="acme/other", aliases=["other"]))
    assert main(["site", "build", "--registry", str(registry), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "models" / "acme" / "other" / "index.html").is_file()
    assert "built 2 model pages" in capsys.readouterr().err


def test_cli_reports_an_invalid_registry_with_exit_1(tmp_path, capsys):
    assert main(["site", "build", "--registry", str(FIXTURE_REGISTRY), "--output", str(tmp_path / "out")]) == 1
    assert "hostile-model" in capsys.readouterr().err


def test_site_command_does_not_import_mkdocs_or_jinja2():
    code = (
        "import sys, swindex.cli as c; c.build_parser(); print(sorted(m for m in ('mkdocs', 'jinja2', 'material', "
        "'torch') if m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


@pytest.mark.slow
def test_the_real_registry_builds(tmp_path):
    registry = REPO / "registry"
    out = build_site(registry, tmp_path / "out").output
    ids = [load_yaml(p)["id"] for p in entry_files(registry)]
    assert ids and all((out / "models" / i / "index.html").is_file() for i in ids)
    assert json.loads((out / API / "models.json").read_text(encoding="utf-8"))["count"] == len(ids)


def test_cli_serve_builds_and_serves_the_site(tmp_path, make_entry, write_registry):
    import urllib.error
    import urllib.parse
    import urllib.request

    registry = write_registry(make_entry())
    command = [sys.executable, "-m", "swindex", "site", "serve", "--registry", str(registry), "--port", "0"]
    # Started as a shell's background job would start it, with SIGINT ignored: Ctrl-C must still stop it.
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO, preexec_fn=ignore_sigint)
    try:
        line = ""
        while "serving" not in line:
            line = process.stderr.readline()
            assert line, "swindex site serve exited before serving"
        url = re.search(r"http://\S+/", line).group(0)
        with urllib.request.urlopen(url + "models/acme/tiny-llama/", timeout=10) as response:
            assert "acme/tiny-llama" in response.read().decode("utf-8")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url + "no/such/page/", timeout=10)
        assert missing.value.code == 404
        stylesheets = re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"', missing.value.read().decode("utf-8"))
        assert stylesheets
        for href in stylesheets:  # the 404 page links by absolute path: it must point into this server's site
            with urllib.request.urlopen(urllib.parse.urljoin(url + "no/such/page/", href), timeout=10) as response:
                assert response.status == 200
        for path, status in (("%00", 400), ("api/v2/", 404)):  # a NUL byte, and a folder without index.html
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + path, timeout=10)
            assert refused.value.code == status
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: the command stops serving and removes its build
        assert process.wait(timeout=30) == 0
    assert "Traceback" not in process.stderr.read()


def test_a_model_id_without_organisation_gets_its_page_and_document(tmp_path, make_entry, write_registry):
    out = build_site(write_registry(make_entry(id="tinymodel", aliases=[])), tmp_path / "out").output
    page = (out / "models" / "tinymodel" / "index.html").read_text(encoding="utf-8")
    index = json.loads((out / API / "models.json").read_text(encoding="utf-8"))["models"][0]
    assert index["organisation"] is None and index["url"] == f"{SITE_URL}{API}/models/tinymodel.json"
    assert (out / API / "models" / "tinymodel.json").is_file()
    assert 'href="../../api/v2/models/tinymodel.json"' in page and 'href="../"' in page  # JSON and "All models"


def test_the_api_links_follow_the_site_url_the_build_is_given(tmp_path, make_entry, write_registry, capsys):
    registry = write_registry(make_entry())
    assert (
        main(
            [
                "site",
                "build",
                "--registry",
                str(registry),
                "--output",
                str(tmp_path / "out"),
                "--site-url",
                "https://mirror.example.org/sw",
            ]
        )
        == 0
    )
    index = json.loads((tmp_path / "out" / API / "models.json").read_text(encoding="utf-8"))
    assert index["models"][0]["page"] == "https://mirror.example.org/sw/models/acme/tiny-llama/"
    assert index["links"]["all"] == "https://mirror.example.org/sw/api/v2/all.json"


def test_a_site_without_a_site_url_is_refused_in_one_line(tmp_path, make_entry, write_registry):
    root = _sources_copy(tmp_path)
    config = (root / "mkdocs.yml").read_text(encoding="utf-8")
    (root / "mkdocs.yml").write_text(re.sub(r"(?m)^site_url:.*$", "", config), encoding="utf-8")
    with pytest.raises(SwindexError, match="site_url"):
        build_site(write_registry(make_entry()), tmp_path / "out", sources=find_sources(root))


def test_a_build_made_before_api_v2_is_still_recognised_and_replaced(tmp_path, make_entry, write_registry):
    out = tmp_path / "out"
    (out / V1).mkdir(parents=True)
    (out / "index.html").write_text("<html>", encoding="utf-8")
    (out / V1 / "models.json").write_text("{}", encoding="utf-8")
    build_site(write_registry(make_entry()), out)
    assert (out / API / "models.json").is_file()


def test_output_that_is_not_a_site_is_never_wiped(tmp_path, make_entry, write_registry):
    registry = write_registry(make_entry())
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious", encoding="utf-8")
    for output in (keep, tmp_path, registry):
        with pytest.raises(SwindexError, match="--output"):
            build_site(registry, output)
    assert (keep / "notes.txt").read_text(encoding="utf-8") == "precious"


def test_a_folder_with_an_index_html_of_its_own_is_not_taken_for_a_build(tmp_path, make_entry, write_registry):
    registry = write_registry(make_entry())
    docs = tmp_path / "userdocs"
    docs.mkdir()
    (docs / "index.html").write_text("<p>mine</p>", encoding="utf-8")
    (docs / "notes.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(SwindexError, match="not a built site"):
        build_site(registry, docs)
    assert (docs / "notes.txt").read_text(encoding="utf-8") == "precious"


def test_a_previous_build_is_replaced(tmp_path, make_entry, write_registry):
    out = tmp_path / "out"
    build_site(write_registry(make_entry(id="acme/first")), out)
    build_site(write_registry(make_entry(id="acme/second"), root=tmp_path / "other"), out)
    assert (out / "models" / "acme" / "second").is_dir() and not (out / "models" / "acme" / "first").exists()


def _row(model_id: str) -> tuple[str, list[str]]:
    html = (fixture_site() / "models" / "index.html").read_text(encoding="utf-8")
    row = next(r for r in html.split("<tr")[1:] if f">{model_id}</a>" in r)
    return row, re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())


def test_models_table_shows_the_verdict_and_the_claims_on_record_apart():
    row, cells = _row("mistralai/Mistral-7B-Instruct-v0.1")
    assert _text(cells[1]).startswith("not measured") and "1 claim on record" in _text(cells[1])
    assert cells[2] == ""  # no layer holds a super weight
    row, cells = _row("acme/candidates-model")
    assert _text(cells[1]).startswith(_entry("acme/candidates-model").verdict.text)


@pytest.mark.parametrize("model_id", _fixture_ids())
def test_models_table_row_carries_the_verdict_outcome_for_the_filter(model_id):
    row, cells = _row(model_id)
    entry = _entry(model_id)
    assert f'data-outcome="{entry.verdict.outcome}"' in row
    assert _text(cells[1]).startswith(entry.verdict.text)
    assert cells[2] == ", ".join(map(str, entry.layers))


def test_models_table_says_when_statuses_come_from_other_findings():
    row, cells = _row("allenai/OLMo-7B-0724-hf")
    count = len(load_yaml(FIXTURE_REGISTRY / "allenai" / "OLMo-7B-0724-hf.yaml")["other_findings"])
    assert f"+{count} other finding" in cells[1]


def test_home_page_counts_use_the_words_and_numbers_of_swindex_list():
    entries = [_entry(i) for i in _fixture_ids()]
    outcomes = {o: sum(e.verdict.outcome == o for e in entries) for o in OUTCOMES}
    text = _text((fixture_site() / "index.html").read_text(encoding="utf-8"))
    assert (
        f"{len(entries)} models: {outcomes['super_weights']} with super weights "
        f"({sum(len(e.super_weights) for e in entries)} super weights in all) · "
        f"{outcomes['no_critical_weight']} where no single weight is critical · {outcomes['not_measured']} not measured"
    ) in text
    assert f"{sum(len(e.claims) for e in entries)} claims on record" in text


def test_model_page_opens_with_the_verdict_and_the_weights_that_matter():
    html = (fixture_site() / "models" / "huggyllama" / "llama-7b" / "index.html").read_text(encoding="utf-8")
    article = html[html.index("<article") :]
    entry = _entry("huggyllama/llama-7b")
    verdict = article.index('id="verdict"')
    assert verdict < article.index("sw-identity") < article.index('id="all-claims"')
    lead = _text(article[verdict : article.index("sw-identity")])
    assert f"Verdict {entry.verdict.text}" in lead
    for claim in entry.super_weights:
        assert claim.coordinate in lead and f"critical ×{claim.impact.ratio:.4g}" in lead


def test_an_interrupted_build_leaves_the_previous_site_whole(tmp_path, make_entry, write_registry, monkeypatch):
    from swindex.sitegen import build as site_build

    out = tmp_path / "out"
    build_site(write_registry(make_entry(id="acme/first")), out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def interrupted(config_file, verbose=False):
        site_dir = Path(load_yaml(config_file)["site_dir"])
        site_dir.mkdir(parents=True, exist_ok=True)
        (site_dir / "half-written.html").write_text("<html>", encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(site_build, "run_mkdocs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_site(write_registry(make_entry(id="acme/second"), root=tmp_path / "other"), out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "out", "registry"]


def test_an_output_that_is_a_file_is_refused(tmp_path, make_entry, write_registry):
    target = tmp_path / "site.txt"
    target.write_text("mine", encoding="utf-8")
    with pytest.raises(SwindexError, match="not a directory"):
        build_site(write_registry(make_entry()), target)
    assert target.read_text(encoding="utf-8") == "mine"
