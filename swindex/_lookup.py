"""Finding a model's entry: by id, alias, loaded model or config, case-insensitively, offline."""

from __future__ import annotations

import os
import warnings

from .errors import RevisionMismatchError, UnknownModelError
from .records import Entry
from .sources import REGISTRY_ENV, RegistrySource, registry_source, source_items  # noqa: F401 (re-exported)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Index:
    """A registry's entries by every name they answer to; records are built when first asked for, so a lookup in
    the packaged index builds one Entry, not every one."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items  # an Entry, or a (path, entry dict) pair from an index
        self._built: dict[int, Entry] = {}
        self.by_name: dict[str, int] = {}
        short: dict[str, list[int]] = {}
        for position, item in enumerate(items):
            model_id, aliases = (
                (item.id, item.aliases) if isinstance(item, Entry) else (item[1]["id"], item[1].get("aliases") or ())
            )
            for name in (model_id, *aliases):
                self.by_name.setdefault(name.casefold(), position)
            short.setdefault(model_id.rsplit("/", 1)[-1].casefold(), []).append(position)
        for name, owners in short.items():
            if len(owners) == 1:
                self.by_name.setdefault(name, owners[0])

    def entry(self, position: int) -> Entry:
        if position not in self._built:
            item = self._items[position]
            self._built[position] = item if isinstance(item, Entry) else Entry.from_dict(item[1], path=item[0])
        return self._built[position]

    def named(self, name: str) -> Entry | None:
        position = self.by_name.get(name.casefold())
        return None if position is None else self.entry(position)

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self.entry(position) for position in range(len(self._items)))


_LOADED: dict[RegistrySource, _Index] = {}
_KEEP = 8  # registries kept loaded; the oldest is forgotten first


def _index(registry: str | os.PathLike[str] | None) -> _Index:
    source = registry_source(registry)
    index = _LOADED.get(source)
    if index is None:
        index = _Index(source_items(source))
        if len(_LOADED) >= _KEEP:
            del _LOADED[next(iter(_LOADED))]
        _LOADED[source] = index
    return index


def clear_cache() -> None:
    """Forget loaded registries (after editing files in a running process)."""
    _LOADED.clear()


def _name_of(model: Any) -> tuple[str, str | None]:
    """A model id (and revision, when known) from a string, a loaded model, a config or a cache path."""
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str):
        config = getattr(model, "config", model)
        name = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
        if not name:
            raise TypeError(
                f"cannot tell which model {type(model).__name__} is: pass a model id such as "
                "'huggyllama/llama-7b', or a transformers model or config loaded from one"
            )
        model = str(name)
    if "models--" in model:  # a Hub cache path: the pattern is compiled only for names that contain one
        from ._hubcache import parse_cache_path

        cached_id, sha = parse_cache_path(model)
        if cached_id is not None:
            return cached_id, sha
    return model.strip(), None


def _is_local_path(name: str) -> bool:
    """A directory on disk or something written as a path, never an ``org/name`` id that merely shares a name."""
    if name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") >= 2:
        return True
    if name[1:2] == ":" and name[:1].isascii() and name[:1].isalpha():  # a Windows drive
        return True
    return os.path.isdir(name)


def _candidates(name: str) -> list[str]:
    """The id itself, then for a local path its last two and last one path components.

    ``nobody/llama-7b`` is not ``huggyllama/llama-7b``: the short-name fallback applies only to bare
    names and local paths, so a different organisation's model never silently gets another's coordinates.
    """
    result = [name]
    if _is_local_path(name):
        import re

        parts = [p for p in re.split(r"[/\\]+", name) if p]
        if len(parts) >= 2:
            result.append("/".join(parts[-2:]))
        if parts:
            result.append(parts[-1])
    return result


def _config_fits(directory: str, entry: Entry) -> bool:
    """A folder matched only by its name must hold that model: its config.json may not contradict the entry."""
    from .limits import MAX_SMALL_FILE_BYTES, ParseError, load_json

    from pathlib import Path

    config_file = Path(directory).expanduser() / "config.json"
    try:
        if config_file.stat().st_size > MAX_SMALL_FILE_BYTES:
            return True
        config = load_json(config_file.read_bytes(), str(config_file))
    except (OSError, ParseError):
        return True  # nothing on disk to compare (a name, no config, or one unsafe to read): the name decides
    if not isinstance(config, dict):
        return True
    if isinstance(config.get("text_config"), dict) and "hidden_size" not in config:
        config = config["text_config"]
    architectures = config.get("architectures") or []
    if architectures and entry.architecture not in architectures:
        return False
    recorded = entry.dimensions.get("hidden_size")
    found = config.get("hidden_size", config.get("n_embd", config.get("d_model")))
    return not (isinstance(recorded, int) and isinstance(found, int) and recorded != found)


def lookup(model: Any, revision: str | None = None, *, registry: str | os.PathLike[str] | None = None) -> Entry:
    """The registry entry for a model id, alias, loaded transformers model or config.

    Raises ValueError for an empty id, UnknownModelError (a KeyError) with the nearest ids when nothing matches, and
    RevisionMismatchError when a revision is asked for that differs from the one the entry was measured at.
    """
    name, cached_revision = _name_of(model)
    if not name:
        raise ValueError(
            "the model id is empty: give a model id such as 'huggyllama/llama-7b', an alias or a local model folder"
        )
    index = _index(registry)
    entry = next(
        (
            found
            for c in _candidates(name)
            if (found := index.named(c)) is not None and (c == name or _config_fits(name, found))
        ),
        None,
    )
    if entry is None:
        import difflib
        import re

        names = sorted({e.id for e in index.entries} | {a for e in index.entries for a in e.aliases})
        folded = {n.casefold(): n for n in names}
        close = [folded[c] for c in difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.5)]
        same_name = index.named(re.split(r"[/\\]+", name)[-1])
        if same_name is not None:
            close = [same_name.id, *(c for c in close if c != same_name.id)][:3]
        raise UnknownModelError(name, close)
    wanted = revision or cached_revision
    if revision and not entry.revision:
        warnings.warn(
            f"{entry.id}: the entry does not record which revision it was measured at, so revision {revision} "
            f"cannot be checked; confirm with `swindex detect {entry.id} --revision {revision}`",
            stacklevel=2,
        )
    if wanted and entry.revision and wanted != entry.revision:
        message = (
            f"{entry.id}: the registry's coordinates were measured at revision {entry.revision}, "
            f"not {wanted}; super weights usually survive fine-tuning but check with "
            f"`swindex detect {entry.id} --revision {wanted}`"
        )
        if revision:
            raise RevisionMismatchError(message + ", or look it up without a revision to accept the recorded one")
        warnings.warn(message, stacklevel=2)
    return entry


def entries(*, registry: str | os.PathLike[str] | None = None) -> tuple[Entry, ...]:
    """Every entry in the registry, sorted by id."""
    return _index(registry).entries


def search(query: str, *, registry: str | os.PathLike[str] | None = None) -> tuple[Entry, ...]:
    """Entries whose id, alias, family or architecture contains the query (case-insensitive), best first."""
    q = query.casefold().strip()
    if not q:
        raise ValueError("search needs a non-empty query; use entries() to list every model")
    scored = []
    for entry in _index(registry).entries:
        fields = [entry.id, *entry.aliases, entry.family or "", entry.architecture]
        folded = [f.casefold() for f in fields]
        if any(q == f for f in folded):
            score = 0
        elif any(f.startswith(q) or f.split("/")[-1].startswith(q) for f in folded):
            score = 1
        elif any(q in f for f in folded):
            score = 2
        else:
            continue
        scored.append((score, entry.id.casefold(), entry))
    return tuple(entry for *_, entry in sorted(scored, key=lambda t: t[:2]))
