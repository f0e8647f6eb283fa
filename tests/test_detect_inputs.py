"""What the detector feeds the model: given ids, a tokenized prompt with BOS, or the documented default."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from swindex.detection import DEFAULT_LENGTH, DEFAULT_PROMPT, default_input_ids, resolve_input_ids
from swindex.errors import DetectionError

CONFIG = SimpleNamespace(vocab_size=512, bos_token_id=1, eos_token_id=2, pad_token_id=0)


class FakeTokenizer:
    def __init__(self, bos: int | None, adds_bos: bool) -> None:
        self.bos_token_id = bos
        self.adds_bos = adds_bos

    def __call__(self, text: str) -> dict[str, list[int]]:
        ids = [10 + len(word) for word in text.split()]
        return {"input_ids": ([self.bos_token_id] if self.adds_bos else []) + ids}


def test_default_sequence_starts_with_bos_and_avoids_special_ids():
    ids = default_input_ids(CONFIG)
    assert ids[0] == 1
    assert len(ids) == DEFAULT_LENGTH
    assert not {0, 2} & set(ids[1:])
    assert all(0 <= i < 512 for i in ids)


def test_default_sequence_avoids_every_id_of_a_list_of_eos_ids():
    """Llama 3 style configs list several EOS ids."""
    config = SimpleNamespace(vocab_size=512, bos_token_id=[7], eos_token_id=[2, 35, 67], pad_token_id=None)
    ids = default_input_ids(config)
    assert ids[0] == 7 and len(ids) == DEFAULT_LENGTH
    assert not {2, 35, 67} & set(ids)


def test_default_sequence_without_bos_in_config_starts_with_zero():
    ids = default_input_ids(SimpleNamespace(vocab_size=100, bos_token_id=None))
    assert ids[0] == 0 and len(set(ids)) == len(ids)


def test_given_ids_are_used_as_they_are():
    assert resolve_input_ids(CONFIG, FakeTokenizer(1, False), None, [5, 6, 7]) == ([5, 6, 7], None)


def test_prompt_gets_bos_prepended_when_the_tokenizer_does_not_add_it():
    ids, prompt = resolve_input_ids(CONFIG, FakeTokenizer(1, adds_bos=False), "a bb ccc", None)
    assert (ids, prompt) == ([1, 11, 12, 13], "a bb ccc")


def test_prompt_keeps_a_single_bos_when_the_tokenizer_adds_it():
    ids, _ = resolve_input_ids(CONFIG, FakeTokenizer(1, adds_bos=True), "a bb", None)
    assert ids == [1, 11, 12]


def test_default_prompt_is_used_with_a_tokenizer():
    _, prompt = resolve_input_ids(CONFIG, FakeTokenizer(None, False), None, None)
    assert prompt == DEFAULT_PROMPT


def test_a_prompt_without_tokenizer_is_refused_with_advice():
    with pytest.raises(DetectionError, match="--input-ids"):
        resolve_input_ids(CONFIG, None, "hello", None)


def test_empty_ids_are_refused():
    with pytest.raises(DetectionError, match="input ids are empty"):
        resolve_input_ids(CONFIG, None, None, [])


@pytest.mark.parametrize("ids", [[1, 512], [-1]])
def test_ids_outside_the_vocabulary_are_refused(ids):
    with pytest.raises(DetectionError, match=r"\[0, 512\)"):
        resolve_input_ids(CONFIG, None, None, ids)
