"""The HTTP client a scan of many checkpoints shares: one connection pool, a whole-check deadline, and retries.

Why a transport rather than changes to `swindex check`: every request check makes goes through
huggingface_hub's shared client (`get_session()`), so a client installed there for the length of a scan
gives every check connection reuse, a deadline and polite retries without check knowing about scans.

* **Deadline.** A worker sets `deadline(seconds)` around one check. Each request's timeouts are cut to the
  time left, and the body is read through a stream that gives up when the time is up, so a server that
  stalls, or trickles one byte a second, holds a worker for at most the deadline.
* **Retries.** 429 and 5xx answers to GET and HEAD are retried with exponential backoff, waiting what
  `Retry-After` asks for when the server says, and never past the check's deadline.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import SwindexError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRIES = 4
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0

_local = threading.local()


def _deadline() -> float | None:
    return getattr(_local, "deadline", None)


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Requests this thread makes inside the block must all finish within ``seconds`` (None: no deadline)."""
    previous = _deadline()
    _local.deadline = None if seconds is None else time.monotonic() + seconds
    try:
        yield
    finally:
        _local.deadline = previous


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(attempt: int, asked: float | None) -> float:
    """How long to wait before retry number ``attempt`` (from 0): what the server asked, else jittered doubling."""
    if asked is not None:
        return min(asked, MAX_BACKOFF_SECONDS)
    jitter = 0.5 + random.random() / 2  # noqa: S311 - spreading retries out, not secrecy
    return min(BACKOFF_SECONDS * 2**attempt, MAX_BACKOFF_SECONDS) * jitter


def _httpx() -> Any:
    """The HTTP library huggingface_hub's session is built on (httpx2 from huggingface_hub 2, httpx before)."""
    import importlib

    try:
        return importlib.import_module("httpx2")
    except ModuleNotFoundError:
        return importlib.import_module("httpx")


def scan_transport(connections: int) -> Any:
    """A transport over one pool of ``connections`` kept-alive connections, with deadlines and retries."""
    httpx2: Any = _httpx()

    class DeadlineExceeded(httpx2.TransportError):
        """The check's whole-request deadline passed (not a timeout: huggingface_hub's backoff must not retry it)."""

    def remaining(request: Any) -> float | None:
        ends = _deadline()
        if ends is None:
            return None
        left = ends - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the check's deadline passed before the server finished answering", request=request)
        return left

    class DeadlineStream(httpx2.SyncByteStream):
        """A response body that ends at the deadline: `swindex.limits.cut_off_at` shuts the connection down then,
        which wakes a blocked read at once (a read timeout alone restarts with each byte a trickling server sends)."""

        def __init__(self, response: Any, request: Any) -> None:
            from .. import limits

            self._stream, self._request = response.stream, request
            self._cut = contextlib.ExitStack()
            ends = _deadline()
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if ends is not None and sock is not None:
                self._cut.enter_context(limits.cut_off_at(ends, sock.fileno()))

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._stream:
                remaining(self._request)
                yield chunk

        def close(self) -> None:
            self._cut.close()
            self._stream.close()

    class ScanTransport(httpx2.BaseTransport):
        def __init__(self) -> None:
            self._inner = httpx2.HTTPTransport(
                limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
            )

        def handle_request(self, request: Any) -> Any:
            attempt = 0
            while True:
                left = remaining(request)
                if left is not None:
                    timeouts = dict(request.extensions.get("timeout") or {})
                    request.extensions["timeout"] = {
                        key: left if timeouts.get(key) is None else min(timeouts[key], left)
                        for key in ("connect", "read", "write", "pool")
                    }
                response = self._inner.handle_request(request)
                if (
                    response.status_code not in RETRY_STATUSES
                    or request.method not in ("GET", "HEAD")
                    or attempt >= RETRIES
                ):
                    return httpx2.Response(
                        response.status_code,
                        headers=response.headers,
                        stream=DeadlineStream(response, request),
                        extensions=response.extensions,
                    )
                wait = backoff(attempt, retry_after(response.headers.get("Retry-After")))
                ends = _deadline()
                if ends is not None and time.monotonic() + wait >= ends:
                    return response  # waiting would pass the deadline: the error answer is the result
                response.close()
                time.sleep(wait)
                attempt += 1

        def close(self) -> None:
            self._inner.close()

    return ScanTransport()


@contextlib.contextmanager
def scan_session(connections: int) -> Iterator[None]:
    """Install the scan's client as huggingface_hub's shared session for the block, then restore the previous one.

    The session is process-wide (huggingface_hub closes the old client when a factory is set), so a process runs
    one scan at a time; the builder scans its models one after another.
    """
    import huggingface_hub
    from huggingface_hub.utils import _http

    set_client_factory = getattr(huggingface_hub, "set_client_factory", None)
    if set_client_factory is None:
        raise SwindexError(
            f"a scan needs huggingface_hub 1.0 or later (this is {huggingface_hub.__version__}): "
            "pip install -U huggingface_hub"
        )

    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)

    def factory() -> Any:
        return _httpx().Client(
            transport=scan_transport(connections),
            event_hooks={"request": [_http.hf_request_event_hook]},
            follow_redirects=True,
            timeout=None,
        )

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(previous)
