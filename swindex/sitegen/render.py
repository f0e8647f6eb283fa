"""The Jinja2 environment: autoescaping on for every template, plus the few filters that emit markup.

Pages are Markdown, but every piece of registry text goes out as escaped text inside an HTML block,
so nothing in an entry can become Markdown or HTML markup; links are emitted only for https: URLs.
HTML blocks alone are not enough: pymdownx.superfences reads fences (a line of three backticks or
tildes, with a header such as ``{ #__config }``) before Markdown sets HTML blocks aside. So every value
a template prints goes through ``as_text``, which also writes backticks, tildes and braces as character
references: the browser shows the same characters, and no Markdown extension sees them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..benefit import human_bytes
from ..records import IMPACTS, OUTCOMES, STATUSES
from ..schema import entry_schema
from ..verification.report import THRESHOLDS
from .chart import LAYER_MEASUREMENT
from .urls import relative, safe_url


_MARKDOWN_ACTIVE = {ord("`"): "&#96;", ord("~"): "&#126;", ord("{"): "&#123;", ord("}"): "&#125;"}
"""Characters a Markdown extension acts on even inside an HTML block:
fences (backticks, tildes) and attribute lists (braces)."""


def as_text(value: Any) -> Markup:
    """Text (or markup we made) that neither HTML nor Markdown will act on: escaped, and with the characters
    of fences and attribute lists written as character references. The template environment's ``finalize``."""
    return Markup(str(escape(value)).translate(_MARKDOWN_ACTIVE))


def link(url: Any, text: Any = None) -> Markup:
    """An anchor for an https: URL; anything else comes out as plain (escaped) text."""
    label = url if text is None else text
    safe = safe_url(url)
    if safe is None:
        return as_text("" if label is None else str(label))
    return Markup('<a href="{}" rel="nofollow noopener">{}</a>').format(as_text(safe), as_text(str(label)))


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
    return Markup('<span class="sw-badge sw-status-{}" title="status: {}">{}</span>').format(
        known, as_text(str(status)), as_text(str(status))
    )


def impact_meanings() -> Mapping[str, str]:
    """What each impact class means, in words (the schema's ``x-meanings``), for a badge's title."""
    return entry_schema()["$defs"]["impact"]["properties"]["classification"]["x-meanings"]


def impact_badge(impact: Any) -> Markup:
    """An impact badge (critical, significant, inert, unmeasured) with its figure: ``critical ×213``;
    the class from known values only."""
    classification = (
        impact.get("classification") if isinstance(impact, Mapping) else getattr(impact, "classification", None)
    )
    known = classification if classification in IMPACTS else "unknown"
    label = str(classification or "unknown")
    figure = impact_figure(impact)
    title = impact_meanings().get(known, "impact")
    return Markup('<span class="sw-badge sw-impact sw-impact-{}" title="impact: {}">{}{}</span>').format(
        known, as_text(title), as_text(label), as_text(f" {figure}" if figure else "")
    )


def impact_figure(impact: Any) -> str:
    """The measured effect in a few characters:
    ``×213`` (perplexity ratio), ``~×4.24`` (one settled on part of the text), ``shift 0.12`` (embedding shift);
    '' when none."""
    get = impact.get if isinstance(impact, Mapping) else lambda name: getattr(impact, name, None)
    ratio, metric = get("ratio"), get("metric")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio):
        return ""
    if metric == "embedding_shift":
        return f"shift {ratio:.3g}"
    if metric in (None, "perplexity", "nll", "row_ablation_nll"):
        # a ratio settled on part of the text (it carries a bound) is an estimate, and reads as one
        return f"~×{ratio:.3g}" if get("bound") else f"×{ratio:.4g}"
    return ""


def code_block(source: str, block_id: str, language: str = "python") -> Markup:
    """A highlighted code block in the markup pymdownx.highlight produces, so Material adds a copy button.

    Material names the block after the nearest element with an id, so each block needs its own.
    """
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name

    tokens = highlight(source, get_lexer_by_name(language), HtmlFormatter(nowrap=True))
    return Markup('<div class="language-{0} highlight" id="{1}"><pre><span></span><code>{2}</code></pre></div>').format(
        language, as_text(block_id), Markup(tokens.translate(_MARKDOWN_ACTIVE))
    )


def plain_measurements(values: Any) -> dict[str, Any]:
    """A source's measurements without the per-layer ones, which the page charts instead (chart.LAYER_MEASUREMENT)."""
    if not isinstance(values, Mapping):
        return {}
    return {key: value for key, value in values.items() if not LAYER_MEASUREMENT.match(str(key))}


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
        finalize=as_text,
    )
    env.filters.update(
        link=link,
        num=number,
        measured=measured,
        badge=badge,
        impact=impact_badge,
        figure=impact_figure,
        plain_measurements=plain_measurements,
        code=code_block,
        href=href,
        bytes=human_bytes,
    )
    outcome = entry_schema()["$defs"]["verdict"]["properties"]["outcome"]
    env.globals.update(
        statuses=STATUSES,
        impacts=IMPACTS,
        outcomes=OUTCOMES,
        outcome_labels=outcome["x-labels"],
        outcome_counts=outcome["x-counts"],
        outcome_meanings=outcome["x-meanings"],
        thresholds=THRESHOLDS,
    )
    return env
