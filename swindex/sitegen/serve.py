"""Serving a built site on localhost, for `swindex site serve` and the browser tests."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging every request to stderr."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature set by http.server
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A missing page gets the site's own 404 page, as on the published site."""
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            super().send_error(code, message, explain)
            return
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    """Ctrl-C stops at once: request threads are daemons and closing does not wait for slow clients."""

    daemon_threads = True
    block_on_close = False


def serve_site(directory: str | Path, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for ``directory`` bound to host:port (0 picks a free port); call serve_forever() on it."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    return _Server((host, port), handler)


def serve_in_thread(directory: str | Path, host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; return it and its base URL. Stop it with shutdown()."""
    server = serve_site(directory, 0, host)
    threading.Thread(target=server.serve_forever, name="swindex-site", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/"
