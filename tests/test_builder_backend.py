"""The default backend asks the Hub which commit it measures, and says why when the Hub refuses a model."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from builder.backend import ModelAccessError, resolve_revision
from builder.modellist import ModelSpec

SHA = "0123456789abcdef0123456789abcdef01234567"


class _Hub(http.server.BaseHTTPRequestHandler):
    """Answers model info as the Hub does: the commit, or an error code the client turns into a typed error."""

    answers: dict[str, tuple[int, str | None]] = {}

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        status, code = next(
            (a for name, a in self.answers.items() if f"/api/models/{name}" in self.path), (404, "RepoNotFound")
        )
        body = (f'{{"id": "x", "sha": "{SHA}"}}' if status == 200 else '{"error": "refused"}').encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Hub]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    _Hub.answers = {"acme/open": (200, None), "acme/gated": (403, "GatedRepo"), "acme/gone": (404, "RepoNotFound")}
    yield _Hub
    server.shutdown()
    server.server_close()


def _spec(model_id: str) -> ModelSpec:
    return ModelSpec(id=model_id)


def test_the_commit_comes_from_the_hub(hub):
    assert resolve_revision(_spec("acme/open")) == SHA


@pytest.mark.parametrize(
    "model_id, error", [("acme/gated", "GatedRepoError"), ("acme/gone", "RepositoryNotFoundError")]
)
def test_a_model_the_hub_refuses_fails_with_the_reason_instead_of_a_cached_commit(hub, model_id, error):
    with pytest.raises(ModelAccessError, match=f"{model_id}: the Hub refused it \\({error}\\)"):
        resolve_revision(_spec(model_id))


def test_an_unreachable_hub_falls_back_to_the_cache_and_says_why(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.warns(UserWarning, match="acme/open: the Hub did not answer"):
        resolve_revision(_spec("acme/open"))
