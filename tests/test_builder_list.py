"""The builder's model list: valid lists become specs, bad ones fail naming the file, the item and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from builder.cli import main
from builder.modellist import ModelListError, ModelLocationError, load_model_list
from swindex.yamlio import load_yaml

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "models.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_defaults_apply_and_items_override(tmp_path):
    path = write(tmp_path, """\
        defaults: {dtype: bfloat16, device: cpu}
        models:
          - id: acme/a
          - id: acme/b
            dtype: float32
            max_memory: {"0": 70GiB, cpu: 200GiB}
    """)
    a, b = load_model_list(path)
    assert (a.dtype, a.device, b.dtype, b.device) == ("bfloat16", "cpu", "float32", "cpu")
    assert dict(b.max_memory) == {"0": "70GiB", "cpu": "200GiB"}


def test_relative_path_is_resolved_against_the_list_file(tmp_path):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    sub = tmp_path / "lists"
    sub.mkdir()
    path = write(sub, "models:\n  - id: acme/tiny\n    path: ../models/tiny\n")
    (spec,) = load_model_list(path)
    assert Path(spec.location()) == (tmp_path / "models" / "tiny").resolve()


def test_package_path_finds_the_directory_inside_an_installed_package(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fake_weights_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = write(tmp_path, "models:\n  - id: acme/packaged\n    path: {package: fake_weights_pkg/model}\n")
    (spec,) = load_model_list(path)
    assert Path(spec.location()) == package / "model"


@pytest.mark.parametrize(
    ("path_text", "expected"),
    [
        ("path: ./no/such/dir", "does not exist"),
        ("path: {package: no_such_package_xyz/model}", "not installed"),
    ],
)
def test_missing_local_models_fail_when_loaded_not_when_listed(tmp_path, path_text, expected):
    path = write(tmp_path, f"models:\n  - id: acme/gone\n    {path_text}\n")
    (spec,) = load_model_list(path)
    with pytest.raises(ModelLocationError, match=expected):
        spec.location()


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("models:\n  - id: acme/a\n    dtyp: float16\n", "models[0] (id 'acme/a')", "dtyp"),
        ("models:\n  - id: acme/a\n    dtype: fp8\n", "models[0].dtype (id 'acme/a')", "fp8"),
        ("models:\n  - path: somewhere\n", "models[0]", "'id' is a required property"),
        ("models:\n  - id: ../../etc/passwd\n", "models[0].id", "does not match"),
        ("models:\n  - id: acme/a\n  - id: ACME/A\n", "models[1].id (id 'ACME/A')", "duplicate id"),
        ("models:\n  - id: acme/a\n    path: {package: pkg/../../x}\n", "models[0].path.package", "'..'"),
        ("models:\n  - id: acme/a\n    path: {pkg: x}\n", "models[0].path (id 'acme/a')", "{package: PACKAGE/SUBDIR}"),
        ("models:\n  - id: acme/a\n    trust_remote_code: yes\n", "models[0].trust_remote_code", "boolean"),
        ("modles: []\n", "(list)", "modles"),
        ("models:\n  - id: acme/a\n  - id: acme/a\n    id: acme/b\n", "", "duplicate key 'id'"),
        ("- id: acme/a\n", "", "a model list is a mapping"),
        ("models:\n  - id: acme/a\n    prompt: hi\n    input_ids: [1, 2]\n", "models[0].input_ids (id 'acme/a')", "not both"),
        ("defaults:\n  prompt: hi\n  input_ids: [1, 2]\nmodels:\n  - id: acme/a\n", "defaults.input_ids", "not both"),
    ],
)
def test_bad_lists_name_the_file_item_and_field(tmp_path, text, field, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ModelListError) as info:
        load_model_list(path)
    message = str(info.value)
    assert str(path) in message
    assert field in message
    assert fragment in message


def test_a_known_field_with_a_bad_value_is_not_also_called_unknown(tmp_path):
    path = write(tmp_path, "models:\n  - id: acme/a\n    dtype: fp8\n")
    with pytest.raises(ModelListError) as info:
        load_model_list(path)
    assert "fp8" in str(info.value) and "unknown field" not in str(info.value) and "Unevaluated" not in str(info.value)


def test_error_carries_the_line_of_the_bad_item(tmp_path):
    path = write(tmp_path, "models:\n  - id: acme/a\n  - id: acme/b\n    dtype: int3\n")
    with pytest.raises(ModelListError, match=rf"{path}:4: models\[1\]\.dtype"):
        load_model_list(path)


def test_cli_exits_2_on_a_bad_list(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    path = write(tmp_path, "models:\n  - id: acme/a\n    dtype: fp8\n")
    assert main(["--models", str(path), "--registry", str(tmp_path / "reg")]) == 2
    assert str(path) in capsys.readouterr().err
    assert not (tmp_path / "reg").exists()


@pytest.mark.parametrize("name", ["models.yaml", "offline.yaml"])
def test_shipped_lists_are_valid(name):
    specs = load_model_list(REPO / "builder" / name)
    assert specs


def test_models_yaml_covers_every_registry_entry_under_its_registry_id():
    listed = {spec.id for spec in load_model_list(REPO / "builder" / "models.yaml")}
    registry_ids = {load_yaml(p)["id"] for p in (REPO / "registry").rglob("*.yaml")}
    missing = sorted(registry_ids - listed)
    assert not missing, f"add these ids to builder/models.yaml (see CONTRIBUTING.md): {missing}"


def test_offline_list_loads_only_local_models():
    specs = load_model_list(REPO / "builder" / "offline.yaml")
    assert all(spec.local for spec in specs)
    assert {s.id for s in specs} == {"karpathy/stories260K", "sentence-transformers/all-MiniLM-L6-v2"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("false", (False, None, None)), ("true", (True, None, None)), ("{sequences: 4, length: 32}", (True, 4, 32))],
)
def test_verify_is_a_switch_or_the_evaluation_size(tmp_path, value, expected):
    path = write(tmp_path, f"models:\n  - id: acme/a\n    verify: {value}\n")
    (spec,) = load_model_list(path)
    assert (spec.verify, spec.verify_sequences, spec.verify_length) == expected


@pytest.mark.parametrize("value", ["{sequences: 0}", "{}", "{seqs: 4}", "sometimes"])
def test_bad_verify_values_are_refused(tmp_path, value):
    path = write(tmp_path, f"models:\n  - id: acme/a\n    verify: {value}\n")
    with pytest.raises(ModelListError, match=r"models\[0\]\.verify"):
        load_model_list(path)


def test_an_items_own_input_replaces_the_default_of_the_other_kind(tmp_path):
    (spec,) = load_model_list(write(tmp_path, "defaults:\n  prompt: hello\nmodels:\n  - id: acme/a\n    input_ids: [1, 2]\n"))
    assert spec.input_ids == (1, 2) and spec.prompt is None
