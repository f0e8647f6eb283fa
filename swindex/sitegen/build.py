"""`swindex site build`: render the registry into Markdown pages and JSON, then run MkDocs in strict mode."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import SwindexError, shown
from ..records import STATUSES, Entry
from ..registry import load_registry
from ..schema import entry_schema, entry_schema_v1
from ..yamlio import dump_yaml, load_yaml
from . import api
from .pages import ModelView, SiteLinks, example_id, model_view
from .render import environment
from .schema_doc import schema_sections
from .sources import SiteSources, find_sources
from .urls import API_ROOT, API_V1_ROOT, API_V1_UNTIL, checked_id, page_source, safe_url


@dataclass(frozen=True)
class SiteBuild:
    """What a build produced and how long its two halves took."""

    output: Path
    models: int
    render_seconds: float
    mkdocs_seconds: float


def generated_time() -> str:
    """Now in UTC, or SOURCE_DATE_EPOCH when set, so that a rebuild can be byte-for-byte reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def hub_endpoint() -> str | None:
    """The model Hub's base URL as huggingface_hub knows it, when that library is installed."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    return safe_url(getattr(constants, "ENDPOINT", None))


def site_links(config: Mapping[str, Any]) -> SiteLinks:
    repo = safe_url(config.get("repo_url"))
    options = (config.get("extra") or {}).get("swindex") or {}
    edit_prefix = None
    if repo:
        branch = options.get("branch", "main")
        registry_path = str(options.get("registry_path", "registry")).strip("/")
        edit_prefix = f"{repo.rstrip('/')}/edit/{branch}/{registry_path}/"
    return SiteLinks(repo_url=repo, edit_prefix=edit_prefix, hub_endpoint=hub_endpoint())


def _front_matter(meta: Mapping[str, Any], body: str) -> str:
    return f"---\n{dump_yaml(dict(meta))}---\n\n{body}"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _refuse_links_out(folder: Path) -> None:
    """A link in site/assets that leads out of it would publish what it points to (say, ~/.ssh): refuse it."""
    top = folder.resolve()
    for path in sorted(folder.rglob("*")):
        if not path.is_symlink():
            continue
        try:
            target = path.resolve()
        except (OSError, RuntimeError):  # a loop of links
            target = None
        if target is None or not target.is_relative_to(top):
            raise SwindexError(
                f"{shown(str(path))}: a link to {shown(os.readlink(path))}, outside {shown(str(folder))}; "
                "the site would copy what it points to, so remove the link or copy the file in"
            )


def _page_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").replace("_", " ").capitalize()


def v1_schema() -> dict[str, Any]:
    """Schema 1, as it was published at api/v1/schema.json (kept in the package for the v1 API); a fresh copy."""
    import copy

    return copy.deepcopy(entry_schema_v1())


def checked_site_url(config: Mapping[str, Any], where: Path | str) -> str:
    """The site's address from the MkDocs settings: the JSON API's links are absolute, so one is needed."""
    url = config.get("site_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise SwindexError(
            f"{where}: site_url is {url!r}; the JSON API's links are absolute, so set site_url to the site's https:// "
            "address (or pass --site-url)"
        )
    return url if url.endswith("/") else url + "/"


def _status_meanings() -> list[tuple[str, str]]:
    """Each status with its meaning, as the schema states it (a structured field, never parsed from prose)."""
    meanings = entry_schema()["$defs"]["status"]["x-meanings"]
    return [(status, meanings[status] + ".") for status in STATUSES]


def render_pages(
    views: Sequence[ModelView], sources: SiteSources, docs: Path, links: SiteLinks, generated: str, site_url: str
) -> list[tuple[str, str]]:
    """Write every page and JSON document into ``docs``; return the extra pages' nav entries."""
    env = environment(sources.templates)
    model_template = env.get_template("model.md.j2")
    for view in views:
        meta = {
            "title": view.id,
            "description": f"Super weights of {view.id}: {view.verdict_text}",
            "search": {"boost": 2},
        }
        _write(docs / page_source(view.id), _front_matter(meta, model_template.render(m=view, here=view.url)))

    totals = api.totals(views)
    counts = Counter(sw.get("status") for v in views for sw in v.entry.get("claims") or [])
    example = example_id(views)
    _write(
        docs / "models" / "index.md",
        _front_matter(
            {"title": "Models", "hide": ["navigation", "toc"], "search": {"exclude": True}},
            env.get_template("models.md.j2").render(views=views, totals=totals, here="models/"),
        ),
    )
    _write(
        docs / "index.md",
        _front_matter(
            {"title": "Super Weight Index"},
            env.get_template("home.md.j2").render(
                views=views,
                totals=totals,
                status_counts=[(s, counts[s]) for s in STATUSES if counts[s]],
                status_meanings=_status_meanings(),
                oneliner=f'from swindex import lookup; sw = lookup("{example}").super_weights[0]',
                here="",
            ),
        ),
    )
    _write(
        docs / "schema.md",
        env.get_template("schema.md.j2").render(sections=schema_sections(entry_schema()), here="schema/"),
    )
    _write(
        docs / "contributing.md",
        env.get_template("contributing.md.j2").render(repo_url=links.repo_url or "", here="contributing/"),
    )
    _write(
        docs / "api.md",
        env.get_template("api.md.j2").render(
            schema_version=api.SCHEMA_VERSION,
            api_root=API_ROOT,
            v1_root=API_V1_ROOT,
            v1_until=API_V1_UNTIL,
            site_url=site_url,
            example=example if any(v.id == example for v in views) else None,
            here="api/",
        ),
    )

    documents = {
        **api.v2_documents(views, generated, entry_schema(), site_url),
        **api.v1_documents(views, generated, v1_schema()),
    }
    for path, document in documents.items():
        _write(docs / path, api.dumps(document))

    if sources.assets.is_dir():
        _refuse_links_out(sources.assets)
        shutil.copytree(sources.assets, docs / "assets", dirs_exist_ok=True)
    extra_nav = []
    if sources.pages.is_dir():
        _refuse_links_out(sources.pages)
        for page in sorted(sources.pages.glob("*.md")):
            target = docs / "pages" / page.name
            _write(target, page.read_text(encoding="utf-8"))
            extra_nav.append((_page_title(page), f"pages/{page.name}"))
    return extra_nav


def mkdocs_config(
    base: Mapping[str, Any], sources: SiteSources, docs: Path, output: Path, extra_nav: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """The base mkdocs.yml with the generator's docs, output and navigation filled in."""
    config = dict(base)
    config.update(
        docs_dir=str(docs),
        site_dir=str(output),
        strict=True,
        not_in_nav="/models/*/\n/pages/*.md",
        nav=[
            {"Home": "index.md"},
            {"Models": "models/index.md"},
            *({title: path} for title, path in extra_nav),
            {"Contributing": "contributing.md"},
            {"Schema": "schema.md"},
            {"JSON API": "api.md"},
        ],
    )
    overrides = sources.site / "overrides"
    if overrides.is_dir():
        theme = dict(config.get("theme") or {})
        theme["custom_dir"] = str(overrides)
        config["theme"] = theme
    return config


def run_mkdocs(config_file: Path, verbose: bool = False) -> None:
    """`mkdocs build --strict` on a generated config, in-process; warnings fail the build."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    logger = logging.getLogger("mkdocs")
    previous = logger.level
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        build(load_config(str(config_file), strict=True))
    except MkDocsException as exc:
        raise SwindexError(f"mkdocs build --strict failed: {exc}; the warnings above say which page and link") from None
    finally:
        logger.setLevel(previous)


def check_output(output: Path, keep: Sequence[Path]) -> None:
    """Refuse an output directory whose contents MkDocs would wipe but that is not a previous build."""
    for path in keep:
        if path.resolve() == output or output in path.resolve().parents:
            raise SwindexError(
                f"{output}: the output directory would hold {path}, and building replaces its contents; "
                "choose another --output"
            )
    if output.exists() and not output.is_dir():
        raise SwindexError(f"{output}: exists and is not a directory; choose a new or empty --output")
    built_before = (output / "index.html").is_file() and any(
        (output / root / "models.json").is_file() for root in (API_ROOT, API_V1_ROOT)
    )
    if output.is_dir() and any(output.iterdir()) and not built_before:
        raise SwindexError(
            f"{output}: not empty and not a built site; building replaces its contents, so choose a "
            "new or empty --output"
        )


def replace_directory(new: Path, target: Path, trash: Path) -> None:
    """Put a finished build in place with two renames, so an interrupted build never leaves a half-written site."""
    if target.exists():
        target.rename(trash)
    new.rename(target)


def build_site(
    registry: str | Path,
    output: str | Path,
    *,
    validate: bool = True,
    sources: SiteSources | None = None,
    work_dir: str | Path | None = None,
    verbose: bool = False,
    site_url: str | None = None,
) -> SiteBuild:
    """Build the website and JSON API for a registry directory into ``output`` (replaced).

    ``site_url`` replaces mkdocs.yml's, for a site served somewhere else (the 404 page links by absolute path).
    """
    started = time.perf_counter()
    registry, output = Path(registry), Path(output).resolve()
    if not registry.is_dir():
        raise SwindexError(f"{registry}: registry directory not found; pass --registry DIR")
    sources = sources or find_sources()
    check_output(output, [registry, sources.config, sources.site, Path.cwd()])
    entries: list[Entry] = load_registry(registry, validate=validate)
    for entry in entries:
        checked_id(entry.id, entry.path)
    base = load_yaml(sources.config)
    if not isinstance(base, Mapping):
        raise SwindexError(f"{sources.config}: expected a mapping of MkDocs settings")
    if site_url is not None:
        base = {**base, "site_url": site_url}
    site_url = checked_site_url(base, sources.config if site_url is None else "--site-url")
    links = site_links(base)
    views = [model_view(entry, links) for entry in entries]

    output.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="swindex-site-") as scratch,
        tempfile.TemporaryDirectory(prefix=f".{output.name}.building-", dir=output.parent) as staging,
    ):
        work = Path(work_dir).resolve() if work_dir else Path(scratch)
        docs = work / "docs"
        if docs.exists():
            shutil.rmtree(docs)
        extra_nav = render_pages(views, sources, docs, links, generated_time(), site_url)
        config_file = work / "mkdocs.yml"
        built = Path(staging) / "site"
        _write(config_file, dump_yaml(mkdocs_config(base, sources, docs, built, extra_nav)))
        rendered = time.perf_counter()
        run_mkdocs(config_file, verbose=verbose)
        replace_directory(built, output, Path(staging) / "previous")
    finished = time.perf_counter()
    return SiteBuild(
        output=output, models=len(views), render_seconds=rendered - started, mkdocs_seconds=finished - rendered
    )
