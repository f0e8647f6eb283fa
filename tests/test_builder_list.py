"""The builder's model list: valid lists become specs, bad ones fail naming the file, the item and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from builder import cli
from builder.cli import load_plan, main
from builder.modellist import ModelListError, ModelLocationError, load_model_list
from swindex.yamlio import load_yaml

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "models.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_defaults_apply_and_items_override(tmp_path):
    path = write(
        tmp_path,
        """\
        defaults: {dtype: bfloat16, device: cpu}
        models:
          - id: acme/a
          - id: acme/b
            dtype: float32
            max_memory: {"0": 70GiB, cpu: 200GiB}
    """,
    )
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
        (
            "models:\n  - id: acme/a\n    prompt: hi\n    input_ids: [1, 2]\n",
            "models[0].input_ids (id 'acme/a')",
            "not both",
        ),
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


def test_the_default_plan_covers_every_registry_entry_under_its_registry_id():
    planned = {spec.id for spec in load_plan(None, REPO / "registry")}
    registry_ids = {load_yaml(p)["id"] for p in (REPO / "registry").rglob("*.yaml")}
    assert sorted(registry_ids - planned) == []


def test_the_default_plan_scans_registry_entries_the_list_does_not_name_with_its_defaults(
    tmp_path, monkeypatch, make_entry, write_registry
):
    models = write(tmp_path, "defaults:\n  dtype: bfloat16\nmodels:\n  - id: acme/listed\n    dtype: float16\n")
    monkeypatch.setattr(cli, "DEFAULT_MODELS", models)
    registry = write_registry(make_entry(id="acme/listed"), make_entry(id="acme/added-by-a-contributor"))
    planned = {spec.id: spec for spec in load_plan(None, registry)}
    assert planned["acme/listed"].dtype == "float16"
    assert planned["acme/added-by-a-contributor"].dtype == "bfloat16"
    assert [spec.id for spec in load_plan(models, registry)] == ["acme/listed"], (
        "a list given with --models is scanned as it is"
    )


def test_offline_list_loads_only_local_models():
    specs = load_model_list(REPO / "builder" / "offline.yaml")
    assert all(spec.local for spec in specs)
    assert {s.id for s in specs} == {"HuggingFaceTB/SmolLM2-135M-Instruct", "sentence-transformers/all-MiniLM-L6-v2"}
    assert not any("shared" in Path(s.path).parts for s in specs if s.path), (
        "the main job needs nothing beside the checkout"
    )


def test_a_gguf_item_names_the_repository_and_commit_its_file_comes_from(tmp_path):
    gguf = tmp_path / "model.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    path = write(
        tmp_path,
        f"models:\n  - id: acme/base\n    path: {gguf.name}\n    artifact: {{repository: acme/base-GGUF, "
        f"revision: {'a' * 40}}}\n",
    )
    (spec,) = load_model_list(path)
    assert spec.location() == str(gguf)
    assert dict(spec.artifact) == {"repository": "acme/base-GGUF", "revision": "a" * 40}


def test_a_gguf_item_with_a_short_artifact_revision_is_refused(tmp_path):
    path = write(tmp_path, "models:\n  - id: acme/base\n    path: model.gguf\n    artifact: {revision: main}\n")
    with pytest.raises(ModelListError, match="artifact"):
        load_model_list(path)


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
    (spec,) = load_model_list(
        write(tmp_path, "defaults:\n  prompt: hello\nmodels:\n  - id: acme/a\n    input_ids: [1, 2]\n")
    )
    assert spec.input_ids == (1, 2) and spec.prompt is None


PINNED = "c89bbadc24278928f22bcdd7de6b61a5a2d08553"


@pytest.mark.parametrize(
    "text",
    [
        "models:\n  - id: acme/plain\n  - id: acme/remote\n    trust_remote_code: true\n",
        "defaults:\n  trust_remote_code: true\nmodels:\n  - id: acme/plain\n    revision: "
        + PINNED
        + "\n  - id: acme/remote\n",
    ],
    ids=["item", "defaults"],
)
def test_remote_code_without_a_pinned_revision_is_refused_naming_the_item(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ModelListError) as info:
        load_model_list(path)
    assert info.value.problems == [info.value.problems[0]] and str(path) in info.value.problems[0]
    assert (
        "models[1].trust_remote_code (id 'acme/remote')" in info.value.problems[0]
        and "pin `revision`" in info.value.problems[0]
    )


def test_remote_code_with_a_full_commit_sha_is_accepted(tmp_path):
    spec = load_model_list(
        write(tmp_path, f"models:\n  - id: acme/remote\n    revision: {PINNED}\n    trust_remote_code: true\n")
    )[0]
    assert (spec.trust_remote_code, spec.revision) == (True, PINNED)


def test_a_branch_name_does_not_pin_remote_code(tmp_path):
    with pytest.raises(ModelListError, match=r"models\[0\]\.revision"):
        load_model_list(
            write(tmp_path, "models:\n  - id: acme/remote\n    revision: main\n    trust_remote_code: true\n")
        )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("only", ["acme/remote"]), ("exclude", ["acme/plain"]), ("include", ["acme/plain", "acme/remote"])],
)
def test_remote_code_flag_splits_the_list(tmp_path, capsys, mode, expected):
    path = write(
        tmp_path,
        f"models:\n  - id: acme/plain\n  - id: acme/remote\n    revision: {PINNED}\n    trust_remote_code: true\n",
    )
    assert main(["--models", str(path), "--registry", str(tmp_path / "reg"), "--dry-run", "--remote-code", mode]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == expected
