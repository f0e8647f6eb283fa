"""Serving a built site on localhost, for `swindex site serve` and the browser tests."""

from __future__ import annotations

import functools
import os
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import shown

INDEX_PAGES = ("index.html", "index.htm")
"""What SimpleHTTPRequestHandler serves for a folder; a folder without one is answered 404, never listed."""


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves the site's files as a static host would: no logging, no directory listings, no tracebacks."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature set by http.server
        pass

    def send_head(self) -> Any:
        """A path the file system cannot take (a NUL byte, ``%00``, bytes that are not UTF-8 such as ``%ff`` or the
        overlong ``%c0%ae``) is a bad request; a folder without index.html, or a link leading out of the served
        folder, is not found: the published site lists no folders and holds no links."""
        try:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path, errors="strict")
            if "\x00" in path:
                raise ValueError("NUL in the path")
            local = self.translate_path(self.path)
        except ValueError:  # UnicodeDecodeError included: what neither UTF-8 nor the file system takes
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad request path")
            return None
        target: str | None = local
        if os.path.isdir(local):
            pages = (os.path.join(local, name) for name in INDEX_PAGES)
            target = next((page for page in pages if os.path.isfile(page)), None)
        if target is None or not _inside(self.directory, target):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        return super().send_head()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        """Never list a folder (send_head already answers 404 before this is reached)."""
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A missing page gets the site's own 404 page, as on the published site."""
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file() or not _inside(self.directory, page):
            super().send_error(code, message, explain)
            return
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path``, links followed, lies in ``root``: a link may not serve what is outside the site."""
    top = os.path.realpath(root)
    return os.path.commonpath([top, os.path.realpath(path)]) == top


class _Server(ThreadingHTTPServer):
    """Ctrl-C stops at once: request threads are daemons and closing does not wait for slow clients."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, never a traceback; a client that hung up is not worth a word."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return
        said = shown(f"{type(error).__name__}: {error}")  # it may quote the request, which the client wrote
        print(f"swindex site serve: could not answer {client_address[0]}: {said}", file=sys.stderr)


def serve_site(directory: str | Path, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for ``directory`` bound to host:port (0 picks a free port); call serve_forever() on it."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    return _Server((host, port), handler)


def serve_in_thread(directory: str | Path, host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; return it and its base URL. Stop it with shutdown()."""
    server = serve_site(directory, 0, host)
    threading.Thread(target=server.serve_forever, name="swindex-site", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/"
