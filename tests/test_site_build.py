"""`swindex site build` end to end: pages, the JSON API, strict MkDocs, extra pages and the real registry."""

from __future__ import annotations

import json
import re
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
from swindex.records import Entry
from swindex.schema import entry_schema
from swindex.sitegen.build import build_site, generated_time
from swindex.sitegen.sources import find_sources
from swindex.validate import entry_files
from swindex.yamlio import load_yaml

API = "api/v1"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _fixture_ids() -> list[str]:
    return sorted((load_yaml(p)["id"] for p in entry_files(FIXTURE_REGISTRY)), key=str.casefold)


def _json(path: str):
    return json.loads((fixture_site() / API / path).read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", ["models.json", "all.json", "schema.json", "models/mistralai/Mistral-7B-v0.1.json"])
def test_every_api_document_carries_schema_version_and_generation_time(document):
    data = _json(document)
    assert data["schema_version"] == entry_schema()["properties"]["schema_version"]["const"]
    assert STAMP.match(data["generated"])


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


def test_api_index_links_resolve_to_documents_and_pages():
    root = fixture_site() / API
    for model in _json("models.json")["models"]:
        assert (root / model["url"]).is_file()
        assert (root / model["page"] / "index.html").resolve().is_file()


@pytest.mark.parametrize("model_id", _fixture_ids())
def test_api_model_document_is_the_registry_entry(model_id):
    document = _json(f"models/{model_id}.json")
    assert document["entry"] == load_yaml(FIXTURE_REGISTRY / f"{model_id}.yaml")
    assert document["path"] == f"registry/{model_id}.yaml"


def test_api_full_dump_holds_every_entry():
    dump = _json("all.json")
    assert dump["count"] == len(dump["entries"]) == len(_fixture_ids())
    assert {e["entry"]["id"] for e in dump["entries"]} == set(_fixture_ids())


def test_api_schema_is_a_valid_schema_that_accepts_the_registry():
    schema = _json("schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in entry_files(FIXTURE_REGISTRY):
        if HOSTILE_ID not in path.as_posix():
            validator.validate(load_yaml(path))
    assert {k: v for k, v in schema.items() if k not in ("schema_version", "generated")} == entry_schema()


@pytest.mark.parametrize("model_id", _fixture_ids())
def test_every_model_gets_a_page_titled_by_its_id(model_id):
    html = (fixture_site() / "models" / model_id / "index.html").read_text(encoding="utf-8")
    assert f"<title>{model_id} - " in html


def test_search_index_holds_aliases_family_and_organisation():
    docs = json.loads((fixture_site() / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    page = " ".join(d["text"] + d["title"] for d in docs if d["location"].startswith("models/meta-llama/Llama-2-7b-hf/"))
    assert "Llama-2-7b" in page and "meta-llama" in page and "llama" in page


def test_models_table_is_left_out_of_search():
    docs = json.loads((fixture_site() / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    assert any(d["location"].startswith("models/mistralai/") for d in docs)
    assert all(not d["location"].startswith("models/#") and d["location"] != "models/" for d in docs)


def test_home_page_shows_the_one_line_lookup():
    html = (fixture_site() / "index.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", html).replace("&quot;", '"')
    assert 'from swindex import lookup; sw = lookup("huggyllama/llama-7b").super_weights[0]' in text


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
    (root / "site" / "pages" / "report.md").write_text("# Quantization report\n\n![chart](../assets/report.svg)\n", encoding="utf-8")
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
    code = "import sys, swindex.cli as c; c.build_parser(); print(sorted(m for m in ('mkdocs', 'jinja2', 'material', 'torch') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


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
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: the command stops serving and removes its build
        assert process.wait(timeout=30) == 0


def test_a_model_id_without_organisation_gets_its_page_and_document(tmp_path, make_entry, write_registry):
    out = build_site(write_registry(make_entry(id="tinymodel", aliases=[])), tmp_path / "out").output
    page = (out / "models" / "tinymodel" / "index.html").read_text(encoding="utf-8")
    index = json.loads((out / API / "models.json").read_text(encoding="utf-8"))["models"][0]
    assert index["organisation"] is None and (out / API / index["url"]).is_file()
    assert 'href="../../api/v1/models/tinymodel.json"' in page and 'href="../"' in page  # JSON and "All models"


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


def test_models_table_counts_standing_claims_and_shows_the_rest():
    html = (fixture_site() / "models" / "index.html").read_text(encoding="utf-8")
    row = next(r for r in html.split("<tr")[1:] if "mistralai/Mistral-7B-Instruct-v0.1" in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert cells[3].startswith("0") and re.search(r">1 claim<", cells[3])
    assert cells[4] == ""


def test_models_table_says_when_statuses_come_from_other_findings():
    html = (fixture_site() / "models" / "index.html").read_text(encoding="utf-8")
    row = next(r for r in html.split("<tr")[1:] if "allenai/OLMo-7B-0724-hf" in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    count = len(load_yaml(FIXTURE_REGISTRY / "allenai" / "OLMo-7B-0724-hf.yaml")["other_findings"])
    assert f"+{count} other finding" in cells[3]


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
