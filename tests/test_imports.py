"""`import swindex` stays light and offline: no torch, transformers or mkdocs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "mkdocs", "accelerate", "jinja2", "jsonschema")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys; {code}; print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_import_and_lookup_do_not_import_heavy_modules():
    assert _imported_after("import swindex; swindex.lookup('mistralai/Mistral-7B-v0.1')") == set()


def test_cli_help_does_not_import_heavy_modules():
    assert _imported_after("from swindex.cli import build_parser; build_parser().format_help()") == set()


def test_lookup_works_with_torch_hidden(tmp_path):
    blocker = tmp_path / "torch.py"
    blocker.write_text("raise ImportError('torch is not installed here')\n")
    (tmp_path / "transformers.py").write_text("raise ImportError('transformers is not installed here')\n")
    code = "from swindex import lookup; print(lookup('mistralai/Mistral-7B-v0.1'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    ).stdout
    assert "model.layers.1.mlp.down_proj.weight[2070, 7310]" in out


def test_heavy_public_names_load_on_first_use():
    import swindex
    import swindex.surgery

    assert "zeroed" not in vars(swindex) or vars(swindex)["zeroed"] is swindex.surgery.zeroed
    assert swindex.zeroed is swindex.surgery.zeroed


def test_every_public_name_is_the_object_its_module_defines():
    import importlib
    import types

    import swindex

    for name in swindex.__all__:
        value = getattr(swindex, name)
        assert not isinstance(value, types.ModuleType), name
        module = swindex._LAZY.get(name)
        if module is not None:
            assert value is getattr(importlib.import_module(module, "swindex"), name), name


def test_detect_and_verify_name_the_functions():
    import importlib

    import swindex

    assert swindex.detect is importlib.import_module("swindex.detection.scan").detect and callable(swindex.detect)
    assert swindex.verify is importlib.import_module("swindex.verification.verify").verify and callable(swindex.verify)


def test_importing_every_submodule_first_does_not_turn_public_functions_into_modules():
    """Importing a submodule binds it on its package: a subpackage called verify once replaced the function
    (``import swindex.sitegen.render; from swindex import verify`` gave a module)."""
    code = (
        "import importlib, pkgutil, types, swindex, swindex.sitegen.render\n"
        "for m in pkgutil.walk_packages(swindex.__path__, 'swindex.'):\n"
        "    m.name.endswith('__main__') or importlib.import_module(m.name)\n"
        "print(' '.join(n for n in swindex.__all__ if isinstance(getattr(swindex, n), types.ModuleType)) or 'none')"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["none"]


def test_every_record_type_an_entry_hands_out_is_exported():
    import re

    import swindex
    from swindex import records
    from swindex._record import Record, fields

    record_types = {
        name
        for name in dir(records)
        if isinstance(getattr(records, name), type) and issubclass(getattr(records, name), Record)
    }
    handed_out = set()
    for record in (records.Entry, records.Claim, records.Verdict, records.Finding):
        for field in fields(record):
            annotation = str(record.__annotations__[field.name])  # a string: records use postponed annotations
            handed_out |= record_types & set(re.findall(r"\w+", annotation))
    assert handed_out, "no record type found in Entry's fields (this test would check nothing)"
    assert handed_out <= set(swindex.__all__), handed_out - set(swindex.__all__)


def test_superweight_is_a_deprecated_name_for_claim():
    import warnings

    import swindex

    assert "SuperWeight" not in swindex.__all__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert swindex.SuperWeight is swindex.Claim
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_swindex_lookup_stays_the_function_after_swindex_imports_its_own_modules():
    """The implementation module is private (swindex._lookup), so no import can put a module where the function is."""
    code = (
        "import swindex, swindex.commands.lookup, swindex._lookup\n"
        "from swindex._lookup import clear_cache\n"
        "from swindex import lookup\n"
        "print(callable(swindex.lookup), callable(lookup))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["True", "True"]


LOOKUP_NEVER_IMPORTS = ("dataclasses", "typing", "inspect", "ast", "pathlib", "yaml", "jsonschema", "swindex.validate")
"""What the 30 ms of `from swindex import lookup; lookup(...)` has no room for (benchmarks/bench_lookup.py times it):
dataclasses alone took 20 ms, typing and pathlib 5 to 10 each, and the packaged index was validated when built."""


def test_a_lookup_from_the_packaged_index_imports_no_module_it_does_not_need(tmp_path):
    import os
    import shutil

    import swindex
    from swindex.registry import build_index

    package = os.path.dirname(swindex.__file__)
    shutil.copytree(package, tmp_path / "swindex", ignore=shutil.ignore_patterns("__pycache__", "registry.json"))
    build_index(os.path.join(os.path.dirname(package), "registry"), tmp_path / "swindex" / "data" / "registry.json")
    code = (
        "import sys; from swindex import lookup, registry_source\n"
        "entry = lookup('huggyllama/llama-7b')\n"
        "assert entry.super_weights[0].row == 3968 and 'down_proj.weight[3968, 7003]' in str(entry)\n"
        f"print(registry_source().kind, *sorted(m for m in {LOOKUP_NEVER_IMPORTS!r} if m in sys.modules))"
    )
    environment = {"PYTHONPATH": str(tmp_path), "SWINDEX_CACHE_DIR": str(tmp_path / "no-cache"), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=environment, cwd=tmp_path
    ).stdout
    assert out.split() == ["packaged"]
