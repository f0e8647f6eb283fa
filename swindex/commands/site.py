"""`swindex site build|serve`: the website and JSON API generated from the registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "site",
        help="build or serve the website and JSON API generated from the registry",
        description="Render the registry into Markdown pages and JSON, then build them with MkDocs Material "
        "(strict). Needs the `site` extra: pip install 'swindex[site]'.",
    )
    actions = p.add_subparsers(dest="site_command", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build",
        help="build the site into a directory",
        description="Validate the registry and build the static site into --output (replaced).",
    )
    build.add_argument("--registry", metavar="DIR", default="registry", help="registry directory (default: ./registry)")
    build.add_argument(
        "--output",
        metavar="DIR",
        default="_site",
        help="where the built site goes (default: ./_site); its contents are replaced",
    )
    build.add_argument(
        "--sources", metavar="DIR", help="directory holding mkdocs.yml and site/ (default: found automatically)"
    )
    build.add_argument(
        "--site-url",
        metavar="URL",
        help="the address the site is published at (default: mkdocs.yml's site_url); the JSON API's "
        "links are built from it",
    )
    build.add_argument("--verbose", action="store_true", help="show MkDocs' progress messages")
    build.set_defaults(handler=run_build)

    serve = actions.add_parser(
        "serve",
        help="build the site and serve it on localhost",
        description="Build the site into a temporary directory and serve it until interrupted.",
    )
    serve.add_argument("--registry", metavar="DIR", default="registry", help="registry directory (default: ./registry)")
    serve.add_argument(
        "--port", type=_port, default=8000, metavar="N", help="port to listen on (default: 8000; 0 picks a free one)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument(
        "--sources", metavar="DIR", help="directory holding mkdocs.yml and site/ (default: found automatically)"
    )
    serve.set_defaults(handler=run_serve)


def _sources(args: argparse.Namespace):
    from ..sitegen.sources import find_sources

    return find_sources(args.sources)


def run_build(args: argparse.Namespace) -> int:
    from ..sitegen.build import build_site

    result = build_site(
        args.registry, args.output, sources=_sources(args), verbose=args.verbose, site_url=args.site_url
    )
    print(
        f"built {result.models} model pages into {result.output} "
        f"(render {result.render_seconds:.2f} s, mkdocs {result.mkdocs_seconds:.2f} s)",
        file=sys.stderr,
    )
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import tempfile

    from ..sitegen.build import build_site
    from ..sitegen.serve import serve_site

    with tempfile.TemporaryDirectory(prefix="swindex-serve-") as scratch:
        output = Path(scratch) / "site"
        server = serve_site(output, port=args.port, host=args.host)  # bound first: the site is built for its address
        host, port = server.server_address[:2]
        try:
            result = build_site(args.registry, output, sources=_sources(args), site_url=f"http://{host}:{port}/")
        except BaseException:
            server.server_close()
            raise
        print(f"serving {result.models} models at http://{host}:{port}/ (Ctrl-C to stop)", file=sys.stderr)
        _stop_on_interrupt_or_term()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


def _stop_on_interrupt_or_term() -> None:
    """Ctrl-C and SIGTERM stop the server, even when started from a shell's background job, which ignores SIGINT."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _port(text: str) -> int:
    """argparse type: a TCP port, 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value
