"""The README's Python examples run as written against every entry in the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from swindex import entries

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_ID = "huggyllama/llama-7b"


def _python_blocks() -> list[str]:
    """The README's lookup examples: the Python blocks that look the paper's model up by id."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [block for block in blocks if f'lookup("{EXAMPLE_ID}")' in block]


class _Tensor:
    """Stands in for a parameter: indexing it checks the index is what a torch tensor would take."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getitem__(self, index: object) -> float:
        assert isinstance(index, tuple) and all(isinstance(i, int) and i >= 0 for i in index), (self.name, index)
        return 0.0


class _Model:
    def __init__(self) -> None:
        self.read: list[str] = []

    def get_parameter(self, name: str) -> _Tensor:
        self.read.append(name)
        return _Tensor(name)


def test_the_readme_has_a_lookup_example_for_the_papers_model():
    assert any(f'lookup("{EXAMPLE_ID}")' in block for block in _python_blocks())


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e.id)
def test_the_readme_examples_run_for_every_entry(entry, capsys):
    for block in _python_blocks():
        model = _Model()
        exec(compile(block.replace(EXAMPLE_ID, entry.id), str(README), "exec"), {"model": model})
        assert model.read == [sw.tensor for sw in entry.super_weights]
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == entry.verdict.text
