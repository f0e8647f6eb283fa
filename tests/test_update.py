"""`swindex update` against a site built by `swindex site build` and served on 127.0.0.1: the cache takes a
validated dump, keeps its ETag, survives bad downloads, and lookups use the newer of it and the packaged index."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import BASE_ENTRY

import swindex
import swindex.constants
import swindex.registry
from swindex import update as upd
from swindex.cli import main
from swindex.errors import SwindexError, ValidationError
from swindex._lookup import clear_cache, lookup
from swindex.registry import build_index
from swindex.sitegen.urls import API_ROOT
from swindex.yamlio import dump_yaml

DUMP = f"/{API_ROOT}/{upd.DUMP_NAME}"
OLD_DATE = BASE_ENTRY["modified"]
NEW_DATE = "2099-12-05"
FRESH = "acme/fresh-model"


def _write(root: Path, *entries: dict) -> Path:
    for entry in entries:
        path = root / f"{entry['id']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(entry), encoding="utf-8")
    return root


def _fresh_entry() -> dict:
    return {**copy.deepcopy(BASE_ENTRY), "id": FRESH, "aliases": [], "modified": NEW_DATE}


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    """Today after every date below: those dates are later than any real today, and an update refuses future ones."""
    monkeypatch.setenv("SWINDEX_TODAY", "2100-12-31")


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """The site of a registry holding one entry more, and a later date, than the packaged index below."""
    from swindex.sitegen.build import build_site

    root = tmp_path_factory.mktemp("upstream")
    registry = _write(root / "registry", copy.deepcopy(BASE_ENTRY), _fresh_entry())
    return build_site(registry, root / "site").output


class _Site(SimpleHTTPRequestHandler):
    """A static host like the real one: strong ETags, 304 for a matching If-None-Match; records what it was asked."""

    overrides: dict[str, bytes]
    seen: list[dict[str, str]]

    def log_message(self, format, *args):  # noqa: A002, ARG002
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        path = self.path.split("?", 1)[0]
        file = Path(self.directory) / path.lstrip("/")
        body = self.overrides.get(path, file.read_bytes() if file.is_file() else None)
        if body is None:
            self.send_error(404)
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def site(built_site):
    """A server on 127.0.0.1 for the built site;
    ``site.overrides`` replaces a path's bytes, ``site.seen`` lists requests."""
    handler = type("Handler", (_Site,), {"overrides": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(built_site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """swindex as a wheel installs it: no source checkout, a packaged index of the older registry, an empty cache."""
    registry = _write(tmp_path / "packaged-registry", copy.deepcopy(BASE_ENTRY))
    index = build_index(registry, tmp_path / "wheel" / "registry.json")
    monkeypatch.setattr(swindex.constants, "default_registry_dir", lambda: None)
    monkeypatch.setattr(swindex.constants, "PACKAGED_INDEX", index)
    monkeypatch.setenv(upd.CACHE_DIR_ENV, str(tmp_path / "cache"))
    for name in (upd.OFFLINE_ENV, upd.SITE_URL_ENV, "SWINDEX_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    clear_cache()
    yield tmp_path / "cache" / upd.CACHE_FILE
    clear_cache()


def _update(site, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["update", "--site", site.url])
    return code, capsys.readouterr().err


def test_lookup_reads_the_packaged_index_until_an_update(installed):
    assert swindex.registry_source().kind == "packaged"
    assert str(swindex.registry_source()) == f"packaged index of {OLD_DATE}"
    with pytest.raises(KeyError):
        lookup(FRESH)


def test_update_fetches_the_sites_dump_and_lookup_then_uses_it(installed, site, capsys):
    code, err = _update(site, capsys)
    assert code == 0, err
    assert f"lookups use the cached update of {NEW_DATE}" in err
    assert installed.is_file()
    assert lookup(FRESH).id == FRESH
    assert swindex.registry_source().kind == "cache"
    assert main(["lookup", FRESH]) == 0
    assert f"registry: cached update of {NEW_DATE}" in capsys.readouterr().err


def test_the_packaged_index_wins_when_it_is_newer_than_the_cache(installed, site, capsys, tmp_path, monkeypatch):
    assert _update(site, capsys)[0] == 0
    newer = _write(tmp_path / "newer", {**copy.deepcopy(BASE_ENTRY), "modified": "2100-01-01"})
    monkeypatch.setattr(swindex.constants, "PACKAGED_INDEX", build_index(newer, tmp_path / "wheel2" / "registry.json"))
    assert str(swindex.registry_source()) == "packaged index of 2100-01-01"
    with pytest.raises(KeyError):
        lookup(FRESH)


def test_the_etag_is_sent_back_and_a_304_leaves_the_cache_alone(installed, site, capsys):
    assert _update(site, capsys)[0] == 0
    first = site.seen[-1]
    assert "if-none-match" not in first
    before = installed.read_bytes()
    code, err = _update(site, capsys)
    assert code == 0 and "up to date" in err
    assert site.seen[-1]["if-none-match"] == upd.read_cache(installed).etag
    assert installed.read_bytes() == before


def _corrupt_entry(document: dict) -> dict:
    document["entries"][0]["entry"]["dimensions"]["num_layers"] = "four"
    return document


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda raw: json.dumps(_corrupt_entry(json.loads(raw))).encode(), "dimensions.num_layers"),
        (lambda raw: raw[: len(raw) // 2], "not valid JSON"),
        (lambda raw: json.dumps({**json.loads(raw), "schema_version": 99}).encode(), "schema version 99"),
        (lambda raw: json.dumps({**json.loads(raw), "entries": []}).encode(), "no entries"),
        (lambda raw: b"<html>maintenance</html>", "not valid JSON"),
    ],
    ids=["invalid-entry", "truncated", "newer-schema", "empty", "html"],
)
def test_a_bad_download_is_refused_and_the_old_cache_stays_intact(installed, site, capsys, built_site, damage, says):
    assert _update(site, capsys)[0] == 0
    before = installed.read_bytes()
    site.overrides[DUMP] = damage((built_site / DUMP.lstrip("/")).read_bytes())
    code, err = _update(site, capsys)
    assert code == 1 and says in err and "Traceback" not in err
    assert installed.read_bytes() == before
    assert [p.name for p in installed.parent.iterdir()] == [installed.name], "no temporary file is left behind"
    clear_cache()
    assert lookup(FRESH).id == FRESH


def test_an_invalid_first_download_writes_no_cache(installed, site, capsys, built_site):
    site.overrides[DUMP] = json.dumps(_corrupt_entry(json.loads((built_site / DUMP.lstrip("/")).read_bytes()))).encode()
    code, err = _update(site, capsys)
    assert code == 1 and FRESH in err
    assert not installed.exists()
    assert swindex.registry_source().kind == "packaged"


def test_offline_lookups_use_the_packaged_index_and_update_fetches_nothing(installed, site, capsys, monkeypatch):
    assert _update(site, capsys)[0] == 0
    requests = len(site.seen)
    monkeypatch.setenv(upd.OFFLINE_ENV, "1")
    assert str(swindex.registry_source()) == f"packaged index of {OLD_DATE}"
    code, err = _update(site, capsys)
    assert code == 0 and "SWINDEX_OFFLINE is set" in err and f"packaged index of {OLD_DATE}" in err
    assert len(site.seen) == requests


def test_an_unreachable_site_is_one_line_and_keeps_the_packaged_index(installed, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    code = main(["update", "--site", f"http://127.0.0.1:{port}/"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach the site" in err and len(err.strip().splitlines()) == 1
    assert err.strip().endswith(f"lookups keep using the packaged index of {OLD_DATE}")
    assert swindex.registry_source().kind == "packaged"


def test_a_corrupt_cache_file_is_ignored_with_a_warning(installed, site, capsys):
    assert _update(site, capsys)[0] == 0
    installed.write_text("{not json", encoding="utf-8")
    with pytest.warns(UserWarning, match="ignoring the cached update"):
        source = swindex.registry_source()
    assert source.kind == "packaged"
    assert _update(site, capsys)[0] == 0, "the next update replaces it"
    assert swindex.registry_source().kind == "cache"


def test_a_source_checkout_reads_its_own_registry_even_with_a_newer_cache(installed, site, capsys, monkeypatch):
    assert _update(site, capsys)[0] == 0
    checkout = Path(__file__).resolve().parent.parent / "registry"
    monkeypatch.setattr(swindex.constants, "default_registry_dir", lambda: checkout)
    source = swindex.registry_source()
    assert (source.kind, source.path) == ("checkout", checkout)


@pytest.mark.parametrize("url", ["http://example.org/", "file:///etc/", "ftp://example.org/", "not a url"])
def test_only_https_sites_or_this_machine_are_fetched_from(url):
    with pytest.raises(SwindexError, match="https"):
        upd.dump_url(url)


def test_the_site_url_comes_from_the_environment_else_the_project_site(monkeypatch):
    monkeypatch.delenv(upd.SITE_URL_ENV, raising=False)
    assert upd.dump_url() == f"{upd.SITE_URL}{API_ROOT}/{upd.DUMP_NAME}"
    monkeypatch.setenv(upd.SITE_URL_ENV, "https://mirror.example.org/swindex")
    assert upd.dump_url() == f"https://mirror.example.org/swindex/{API_ROOT}/{upd.DUMP_NAME}"


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(upd.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert upd.cache_dir() == tmp_path / "xdg" / "swindex"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert upd.cache_dir() == tmp_path / "home" / ".cache" / "swindex"
    monkeypatch.setenv(upd.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert upd.cache_dir() == tmp_path / "mine"


def test_a_dump_with_an_entry_filed_under_another_id_is_refused(built_site):
    document = json.loads((built_site / DUMP.lstrip("/")).read_bytes())
    document["entries"][0]["path"] = "registry/other/place.yaml"
    with pytest.raises(ValidationError, match="is not where the entry"):
        upd.checked_entries(document, "dump")


def test_a_cache_keeps_working_across_an_entry_schema_bump(installed, site, capsys, monkeypatch):
    """The cache's layout has its own version: entries an older swindex cached are upgraded when read, not refused."""
    import json

    from swindex.migrate import downgrade

    assert _update(site, capsys)[0] == 0
    document = json.loads(installed.read_text(encoding="utf-8"))
    document["entries"] = [{**item, "entry": downgrade(item["entry"])} for item in document["entries"]]
    assert {item["entry"]["schema_version"] for item in document["entries"]} == {1}
    installed.write_text(json.dumps(document), encoding="utf-8")
    clear_cache()
    assert swindex.registry_source().kind == "cache"
    assert lookup(FRESH).schema_version == swindex.constants.ENTRY_SCHEMA_VERSION


def test_a_cache_in_another_index_format_is_refused_in_one_line(installed, site, capsys):
    import json

    assert _update(site, capsys)[0] == 0
    document = json.loads(installed.read_text(encoding="utf-8"))
    installed.write_text(json.dumps({**document, "index_format": 99}), encoding="utf-8")
    with pytest.raises(upd.UpdateError, match=r"index format 99.*run `swindex update` again"):
        upd.read_cache(installed)


def test_a_lookup_in_the_packaged_index_builds_only_the_entry_it_returns(installed, monkeypatch):
    from swindex.records import Entry

    built: list[str] = []
    original = Entry.from_dict.__func__

    def counting(cls, data, **kwargs):
        built.append(data["id"])
        return original(cls, data, **kwargs)

    monkeypatch.setattr(Entry, "from_dict", classmethod(counting))
    clear_cache()
    assert lookup(BASE_ENTRY["id"]).id == BASE_ENTRY["id"]
    assert built == [BASE_ENTRY["id"]]
