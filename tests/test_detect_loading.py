"""swindex.loading: float16 fallback, revisions from the cache, offloading, missing tokenizers.

The dtype rules are pinned in test_dtypes, cache paths in test_hubcache.
"""

from __future__ import annotations


import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from planted import Plant, build_planted, save_planted  # noqa: E402

from swindex.detection import detect  # noqa: E402
from swindex.errors import DetectionError  # noqa: E402
from swindex._hubcache import parse_snapshot  # noqa: E402
from swindex.loading import load_model, resolve_source  # noqa: E402

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_snapshot_paths_give_id_and_revision(tmp_path):
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    assert parse_snapshot(snapshot) == ("acme/tiny", SHA)
    assert resolve_source(str(snapshot)) == (snapshot, "acme/tiny", SHA)


def test_a_revision_for_a_local_directory_must_be_the_sha_of_its_files(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text("{}", encoding="utf-8")
    assert resolve_source(str(plain), SHA) == (plain, None, SHA)
    with pytest.raises(DetectionError, match="cannot select anything"):
        resolve_source(str(plain), "main")
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DetectionError, match=f"snapshot of revision {SHA}"):
        resolve_source(str(snapshot), "f" * 40)


def test_a_directory_without_config_json_is_not_a_model(tmp_path):
    with pytest.raises(DetectionError, match="no config.json"):
        resolve_source(str(tmp_path))


def test_a_missing_local_directory_is_reported_as_such(tmp_path):
    with pytest.raises(DetectionError, match="no model directory"):
        resolve_source(str(tmp_path / "nothing-here"))


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    """A Gemma whose planted spike (~120,000) overflows float16."""
    model, planted = build_planted("gemma", plants=(Plant(1, 5, 7, input=400.0, weight=300.0),))
    return save_planted(model, tmp_path_factory.mktemp("gemma") / "gemma-overflow"), planted


def test_a_directory_without_tokenizer_files_has_no_tokenizer(gemma_dir):
    loaded = load_model(str(gemma_dir[0]), with_tokenizer=True)
    assert loaded.tokenizer is None
    assert (loaded.model_id, loaded.revision, loaded.dtype, loaded.device) == (None, None, "float32", "cpu")


def test_a_tokenizer_that_fails_to_load_is_noted_and_token_ids_are_used(tmp_path):
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7),))
    path = save_planted(model, tmp_path / "broken-tokenizer")
    (path / "tokenizer.json").write_text("{ this is not json", encoding="utf-8")
    loaded = load_model(str(path))
    assert loaded.tokenizer is None
    assert any(note.startswith("tokenizer not loaded") for note in loaded.notes)
    result = detect(str(path))
    assert result.prompt is None and [w.index for w in result.candidates] == [planted[0].index]
    assert any(note.startswith("tokenizer not loaded") for note in result.notes)


def test_float16_overflow_is_detected_and_rescanned_wider(gemma_dir):
    path, planted = gemma_dir
    result = detect(str(path), dtype="float16", device="cpu")
    assert result.dtype == "float32"
    assert any("overflowed" in note for note in result.notes)
    assert [w.index for w in result.candidates] == [planted[0].index]


def test_float16_overflow_in_a_model_passed_in_is_an_error_with_advice(gemma_dir):
    import torch

    model = load_model(str(gemma_dir[0]), dtype="float16").model
    assert model.dtype == torch.float16
    with pytest.raises(DetectionError, match="overflow.*bfloat16"):
        detect(model)


def test_a_model_offloaded_to_disk_is_scanned(tmp_path):
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7), Plant(3, 9, 11)))
    path = save_planted(model, tmp_path / "big-llama")
    loaded = load_model(str(path), max_memory={"cpu": 100_000}, offload_folder=tmp_path / "offload")
    assert loaded.offloaded
    assert "disk" in set(loaded.model.hf_device_map.values())
    result = detect(loaded.model)
    assert [w.index for w in result.candidates] == [p.index for p in planted]


@pytest.fixture
def scratch_tmp(tmp_path, monkeypatch):
    """Where tempfile (and so a default offload folder) puts its directories during the test."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_an_unused_temporary_offload_folder_is_removed_at_once(tmp_path, scratch_tmp):
    """Dense safetensors weights offload to disk in place, so the folder made for accelerate stays empty."""
    model, _ = build_planted("llama", plants=())
    path = save_planted(model, tmp_path / "llama")
    loaded = load_model(str(path), max_memory={"cpu": 100_000})
    assert "disk" in set(loaded.model.hf_device_map.values())
    assert list(scratch_tmp.glob("swindex-offload-*")) == []


def test_a_used_temporary_offload_folder_is_removed_with_its_model(tmp_path, scratch_tmp):
    """Fused experts are re-saved to the offload folder while loading; it goes when the model does."""
    import gc

    model, planted = build_planted("mixtral", plants=(Plant(1, 5, 7, expert=2),))
    path = save_planted(model, tmp_path / "mixtral")
    loaded = load_model(str(path), max_memory={"cpu": 100_000})
    (folder,) = scratch_tmp.glob("swindex-offload-*")
    assert any(folder.iterdir())
    assert [w.index for w in detect(loaded.model).candidates] == [planted[0].index]
    del loaded
    gc.collect()
    assert not folder.exists()


def test_a_hub_id_loads_offline_from_the_cache_and_records_its_commit(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    model, planted = build_planted("llama", plants=(Plant(1, 5, 7),))
    repo = tmp_path / "hub" / "models--acme--tiny"
    save_planted(model, repo / "snapshots" / SHA)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    result = detect("acme/tiny", revision="main", device="cpu")
    assert (result.model_id, result.revision) == ("acme/tiny", SHA)
    assert [w.index for w in result.candidates] == [planted[0].index]


def test_a_wider_reload_keeps_the_offload_placement(tmp_path):
    from swindex.loading import reload_in

    model, _ = build_planted("llama", plants=())
    path = save_planted(model, tmp_path / "llama")
    loaded = load_model(str(path), dtype="float16", max_memory={"cpu": 100_000}, offload_folder=tmp_path / "offload")
    again = reload_in(loaded, "float32")
    assert (again.dtype, again.offloaded) == ("float32", True)
    assert "disk" in set(again.model.hf_device_map.values())
    assert again.options["offload_folder"] == tmp_path / "offload"


def test_a_branch_name_as_the_revision_of_a_loaded_model_is_refused_with_advice():
    model, _ = build_planted("llama", plants=())
    with pytest.raises(DetectionError, match="'main'.*40-character commit sha"):
        detect(model, revision="main")


def test_repository_code_is_not_run_unless_asked(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"model_type": "acme_custom", "architectures": ["AcmeForCausalLM"], "auto_map": {"AutoConfig": '
        '"configuration_acme.AcmeConfig", "AutoModelForCausalLM": "modeling_acme.AcmeForCausalLM"}}'
    )
    ran = tmp_path / "ran"
    (tmp_path / "configuration_acme.py").write_text(f"import pathlib\npathlib.Path({str(ran)!r}).touch()\n")
    with pytest.raises(DetectionError, match="--trust-remote-code"):
        load_model(str(tmp_path))
    assert not ran.exists()


def test_float16_weights_are_released_before_the_wider_reload(gemma_dir, monkeypatch):
    """Both copies may not fit together: whoever still holds the float16 module, its tensors are empty by then."""
    import gc
    import weakref

    from swindex import loading

    first: list[weakref.ref] = []
    held_at_reload: list[int] = []
    original_load, original_reload = loading.load_model, loading.reload_in

    def load(*args, **kwargs):
        loaded = original_load(*args, **kwargs)
        first.append(weakref.ref(loaded.model))
        return loaded

    def reload(described, dtype):
        gc.collect()
        model = first[0]()
        held_at_reload.append(0 if model is None else sum(t.numel() for t in (*model.parameters(), *model.buffers())))
        return original_reload(described, dtype)

    monkeypatch.setattr(loading, "load_model", load)
    monkeypatch.setattr(loading, "reload_in", reload)
    result = detect(str(gemma_dir[0]), dtype="float16", device="cpu")
    assert held_at_reload == [0]
    assert result.dtype == "float32" and result.candidates


def test_a_model_that_cannot_be_sized_says_why_instead_of_hiding_it():
    from swindex.loading import count_parameters

    class Unbuildable:
        @classmethod
        def from_config(cls, config, trust_remote_code=False):
            raise ValueError("rope_scaling needs a type")

    with pytest.warns(
        UserWarning, match="cannot count the parameters .*rope_scaling needs a type.*max_memory or offload_folder"
    ):
        assert count_parameters(object(), Unbuildable) is None
