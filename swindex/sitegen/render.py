"""The Jinja2 environment: autoescaping on for every template, plus the few filters that emit markup.

Pages are Markdown, but every piece of registry text goes out as escaped text inside an HTML block,
so nothing in an entry can become Markdown or HTML markup; links are emitted only for https: URLs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..records import STATUSES
from ..verification.report import THRESHOLDS
from .urls import relative, safe_url


def link(url: Any, text: Any = None) -> Markup:
    """An anchor for an https: URL; anything else comes out as plain (escaped) text."""
    label = url if text is None else text
    safe = safe_url(url)
    if safe is None:
        return escape("" if label is None else str(label))
    return Markup('<a href="{}" rel="nofollow noopener">{}</a>').format(safe, str(label))


def number(value: Any) -> str:
    """Numbers as a reader wants them: integers whole, floats in their shortest exact form (so values copy exactly)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def measured(value: Any, digits: int = 4) -> Markup:
    """A measured figure to read, not copy: four significant digits, the exact value in a tooltip."""
    if isinstance(value, float) and math.isfinite(value):
        return Markup('<span class="sw-measured" title="{}">{}</span>').format(repr(value), f"{value:.{digits}g}")
    return escape(number(value))


def badge(status: Any) -> Markup:
    """A status badge; the CSS class is chosen from the known statuses only."""
    known = status if status in STATUSES else "unknown"
    return Markup('<span class="sw-badge sw-status-{}" title="status: {}">{}</span>').format(known, str(status), str(status))


def code_block(source: str, block_id: str, language: str = "python") -> Markup:
    """A highlighted code block in the markup pymdownx.highlight produces, so Material adds a copy button.

    Material names the block after the nearest element with an id, so each block needs its own.
    """
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name

    tokens = highlight(source, get_lexer_by_name(language), HtmlFormatter(nowrap=True))
    return Markup('<div class="language-{0} highlight" id="{1}"><pre><span></span><code>{2}</code></pre></div>').format(language, block_id, Markup(tokens))


@jinja2.pass_context
def href(context: jinja2.runtime.Context, target: str) -> str:
    """A link to ``target`` (relative to the site root) from the page being rendered."""
    return relative(context.get("here", ""), target)


def environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        autoescape=True,
        undefined=jinja2.Undefined,  # optional fields are simply absent from entry dicts
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(link=link, num=number, measured=measured, badge=badge, code=code_block, href=href)
    env.globals.update(statuses=STATUSES, thresholds=THRESHOLDS)
    return env
