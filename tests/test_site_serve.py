"""`swindex site serve`'s server: a static host's answers, never a traceback, never a folder listing."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from swindex.sitegen.serve import serve_in_thread


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int]]:
    site = tmp_path / "site"
    (site / "models" / "acme" / "tiny").mkdir(parents=True)
    (site / "index.html").write_text("<p>home</p>", encoding="utf-8")
    (site / "404.html").write_text("<p>the site's own 404</p>", encoding="utf-8")
    (site / "models" / "acme" / "tiny" / "index.html").write_text("<p>tiny</p>", encoding="utf-8")
    (site / "api" / "v2").mkdir(parents=True)
    (site / "api" / "v2" / "models.json").write_text("{}", encoding="utf-8")
    server, url = serve_in_thread(site)
    host, port = server.server_address[:2]
    yield host, port
    server.shutdown()
    server.server_close()


def _get(served: tuple[str, int], path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(*served, timeout=10)
    try:
        connection.request("GET", path)  # sent as written: no client-side quoting
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_pages_and_files_are_served(served):
    assert _get(served, "/") == (200, "<p>home</p>")
    assert _get(served, "/models/acme/tiny/")[0] == 200
    assert _get(served, "/api/v2/models.json") == (200, "{}")


@pytest.mark.parametrize("path", ["/%00", "/models/%00/", "/api/v2/models.json%00", "/index.html%00.png", "/%2500%00"])
def test_a_nul_byte_in_the_path_is_a_bad_request_without_a_traceback(served, capfd, path):
    status, _ = _get(served, path)
    assert status == 400
    assert _get(served, "/")[0] == 200  # the server is still answering
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ValueError" not in err


@pytest.mark.parametrize("path", ["/api/", "/api/v2/", "/api", "/models/acme/"])
def test_a_folder_without_index_html_is_not_listed(served, path):
    status, body = _get(served, path)
    assert status == 404 and body == "<p>the site's own 404</p>"
    assert "models.json" not in body and "Directory listing" not in body


def test_a_folder_with_index_html_without_its_slash_is_redirected_to_it(served):
    connection = http.client.HTTPConnection(*served, timeout=10)
    try:
        connection.request("GET", "/models/acme/tiny")
        response = connection.getresponse()
        assert response.status == 301 and response.getheader("Location") == "/models/acme/tiny/"
    finally:
        connection.close()


def test_a_missing_page_gets_the_sites_404_page(served):
    assert _get(served, "/no/such/page/") == (404, "<p>the site's own 404</p>")
