"""Where each page and JSON document lives in the built site, and which links are safe to emit."""

from __future__ import annotations

import posixpath
import re

from ..errors import SwindexError

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
_SAFE_URL = re.compile(r"^https://[^\s<>\"'`\\]+$")
API_VERSION = 2
API_ROOT = f"api/v{API_VERSION}"
"""The current JSON API (schema 2, the field names of swindex's Python records); `swindex update` reads its all.json."""
API_V1_ROOT = "api/v1"
"""Schema-1 documents converted from the current data, kept for existing readers until API_V1_UNTIL."""
API_V1_UNTIL = "2027-06-30"


def checked_id(model_id: str, where: str | None = None) -> str:
    """The id itself if it is safe to use in file paths and URLs; an error naming the entry otherwise.

    Validation already enforces this; checking again keeps an unvalidated build inside its directory.
    """
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id) or ".." in model_id or model_id.endswith("."):
        raise SwindexError(
            f"{where or '<entry>'}: id {model_id!r} is not a model id (org/name); fix the entry "
            "before building the site"
        )
    return model_id


def page_source(model_id: str) -> str:
    """The generated Markdown file of a model, relative to the docs directory."""
    return f"models/{model_id}.md"


def page_url(model_id: str) -> str:
    """The model page's URL relative to the site root (MkDocs directory URLs)."""
    return f"models/{model_id}/"


def api_model_path(model_id: str, root: str = API_ROOT) -> str:
    return f"{root}/models/{model_id}.json"


def absolute(site_url: str, path: str) -> str:
    """``path`` (relative to the site root) under the site's address: the JSON API's links work wherever it is read."""
    return site_url.rstrip("/") + "/" + path.lstrip("/")


def relative(from_url: str, to_path: str) -> str:
    """A link from the page at ``from_url`` to ``to_path`` (both relative to the site root)."""
    base = posixpath.dirname(from_url.rstrip("/") + "/x") if from_url else ""
    target = posixpath.relpath(to_path or ".", base or ".")
    if (not to_path or to_path.endswith("/")) and not target.endswith("/"):
        target += "/"
    return "./" if target in (".", "./") else target


def safe_url(url: object) -> str | None:
    """The URL if it is a plain https: link, else None: anything else is shown as text, never linked."""
    if isinstance(url, str) and _SAFE_URL.match(url):
        return url
    return None
