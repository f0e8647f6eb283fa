"""Scoring the next tokens in cache-sized blocks gives the figures the whole batch's log-softmax gives."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from swindex.verification import measure
from swindex.verification.measure import _token_scores


def _whole_batch(logits: torch.Tensor, target: torch.Tensor, stops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, target.unsqueeze(-1)).double().sum(dim=(1, 2))
    return nll, logp[..., stops].double().exp().sum(dim=1)


@given(
    sequences=st.integers(1, 5),
    positions=st.integers(1, 40),
    vocab=st.integers(2, 300),
    block=st.integers(1, 2000),
    stops=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_blocks_of_any_size_score_as_the_whole_batch_does(sequences, positions, vocab, block, stops, seed) -> None:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(sequences, positions + 1, vocab, generator=generator) * 8
    target = torch.randint(0, vocab, (sequences, positions), generator=generator)
    stop_ids = torch.randint(0, vocab, (stops,), generator=generator)
    previous, measure.SCORED_ELEMENTS = measure.SCORED_ELEMENTS, block
    try:
        nll, stop = _token_scores(logits[:, :-1], target, stop_ids)
    finally:
        measure.SCORED_ELEMENTS = previous
    expected_nll, expected_stop = _whole_batch(logits[:, :-1], target, stop_ids)
    assert torch.allclose(nll, expected_nll, rtol=1e-12, atol=1e-9)
    assert stop.shape == expected_stop.shape and torch.allclose(stop, expected_stop, rtol=1e-12, atol=1e-15)


def test_a_bfloat16_models_logits_are_scored_in_float32() -> None:
    logits = torch.randn(2, 9, 50, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    target = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(2))
    nll, _ = _token_scores(logits[:, :-1], target, torch.tensor([], dtype=torch.long))
    expected, _ = _whole_batch(logits[:, :-1], target, torch.tensor([], dtype=torch.long))
    assert nll.dtype == torch.float64 and torch.allclose(nll, expected, rtol=1e-12)
