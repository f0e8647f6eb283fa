"""When one weight's class is settled before every evaluation sequence has been measured with it zeroed.

Each single-weight ablation runs sequence by sequence, paired with the unablated pass on the same sequences.
Sequence ``i`` adds ``d_i``, the change of its summed negative log-likelihood, over ``c_i`` predicted tokens;
the plain way's figure for the whole text is ``log(zeroed / original perplexity) = sum(d) / sum(c)``. After
``n`` of the ``N`` sequences the ratio estimate of that mean gets a two-sided Student-t bound at `CONFIDENCE`,
with the finite-population correction (the N sequences are the whole population: at n = N the bound is the
plain way's figure exactly). The weight is settled when the whole bound lies inside one class of
``swindex.claims.IMPACT_THRESHOLDS`` (critical / significant / inert); a weight near a threshold simply runs
on, up to every sequence, and then gets the plain way's own figure. At least `MIN_SEQUENCES` sampled sequences are
measured before a class is trusted, so that a between-sequence spread exists to bound by.

A sequence unlike the rest (the one where a super activation appears twice, say) can hide from a sample: its change
may be a hundred times the others'. So the sequences the original pass shows to be unusual are chosen before any is
measured, measured first and counted whole (a census stratum, ``census``), and only the rest are sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..claims import classify

CONFIDENCE = 0.999
"""Two-sided confidence of each weight's bound on its perplexity ratio."""
MIN_SEQUENCES = 3
"""Sequences measured before any class is settled (the t bound needs a spread; a few guard against one odd one)."""


@dataclass(frozen=True)
class Settled:
    """One weight's measurement so far: its ratio estimate, the bound on the whole text's ratio, and what it used."""

    ratio: float
    low: float
    high: float
    confidence: float
    sequences: int  # measured with the weight zeroed
    tokens: int  # predicted tokens of those sequences
    total_sequences: int
    classification: str | None  # the class the bound lies in, None while it straddles a threshold
    more: int = 0  # sampled sequences it would still need at this estimate and spread (all left where none would)

    @property
    def complete(self) -> bool:
        """Every sequence measured: the figure is the plain way's."""
        return self.sequences >= self.total_sequences


def t_quantile(p: float, df: int) -> float:
    """The two-sided Student-t quantile: P(|T| <= t) = p with ``df`` degrees of freedom (exact CDF, bisected)."""
    if not 0 < p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df >= 1, got p={p}, df={df}")

    def central(t: float) -> float:  # Abramowitz & Stegun 26.7.3/26.7.4: P(|T| <= t) for integer df
        theta = math.atan(t / math.sqrt(df))
        s, c = math.sin(theta), math.cos(theta)
        if df % 2:
            term, total = c, c if df > 1 else 0.0
            for k in range(3, df - 1, 2):
                term *= c * c * (k - 1) / k
                total += term
            return 2 / math.pi * (theta + s * total)
        term = total = 1.0
        for k in range(2, df - 1, 2):
            term *= c * c * (k - 1) / k
            total += term
        return s * total

    low, high = 0.0, 1.0
    while central(high) < p:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if central(mid) < p else (low, mid)
    return high


def bound(
    changes: Sequence[float],
    counts: Sequence[int],
    total: int,
    metric: str = "perplexity",
    confidence: float = CONFIDENCE,
    census: int = 0,
    total_tokens: int | None = None,
) -> Settled:
    """The ratio estimate and bound after the sequences measured so far (``changes[i]`` over ``counts[i]`` tokens).

    ``total`` is the number of evaluation sequences; ``metric`` names the classes (``perplexity``: the ratio is
    exp of the mean change per token). The first ``census`` sequences are a stratum measured whole (chosen before
    any was measured, as those most likely to differ): they add no sampling error, and only the others are sampled,
    so one sequence unlike the rest cannot hide among them. ``total_tokens`` is every sequence's predicted tokens
    (known before measuring); by default estimated from the sampled ones.
    """
    n, tokens = len(changes), int(sum(counts))
    if n == 0 or tokens <= 0:
        raise ValueError("bound needs at least one measured sequence with a predicted token")
    census = min(census, total)
    whole = sum(changes) / tokens
    if not math.isfinite(whole):  # an overflowing sequence makes the whole text's perplexity infinite, as the plain way
        return Settled(math.inf, math.inf, math.inf, confidence, n, tokens, total, classify(metric, math.inf))
    estimate = _estimate(changes, counts, total, census, total_tokens)
    half = estimate.half(estimate.sampled, confidence)
    low, high = _ratio(estimate.mean - half), _ratio(estimate.mean + half)
    ratio = _ratio(estimate.mean)
    if estimate.sampled >= min(MIN_SEQUENCES, total - census) and classify(metric, low) == classify(metric, high):
        return Settled(ratio, low, high, confidence, n, tokens, total, classify(metric, ratio))
    return Settled(ratio, low, high, confidence, n, tokens, total, None, estimate.more(metric, confidence))


@dataclass(frozen=True)
class _Estimate:
    """The stratified estimate of the whole text's mean change per token, and what its sampling error scales with."""

    mean: float
    sampled: int  # sequences measured from the sampled stratum
    rest_total: int  # sequences in the sampled stratum
    spread: float | None  # per-sequence residual spread of the sampled ones (None: fewer than two, or all measured)
    everything: float  # the whole text's predicted tokens
    complete: bool = False  # every sequence measured

    def more(self, metric: str, confidence: float) -> int:
        """How many more sampled sequences would settle the class if the estimate and its spread stayed as they are
        (every one left where none would): a settling pass's next step, so that one far from settling takes a full
        call."""
        left = max(self.rest_total - self.sampled, 0)
        if self.spread is None or not math.isfinite(self.mean):
            return left
        for more in range(1, left + 1):
            half = self.half(self.sampled + more, confidence)
            low, high = _ratio(self.mean - half), _ratio(self.mean + half)
            if self.sampled + more >= MIN_SEQUENCES and classify(metric, low) == classify(metric, high):
                return more
        return left

    def half(self, sampled: int, confidence: float) -> float:
        """The bound's half-width in log ratio with ``sampled`` sequences measured at this spread (and the whole
        census): none once every sequence is measured."""
        if self.complete or (0 < self.rest_total <= sampled and self.sampled >= 0):
            return 0.0
        if sampled < 2 or self.spread is None:
            return math.inf
        error = self.rest_total * self.spread / math.sqrt(sampled) * math.sqrt(1 - sampled / self.rest_total)
        return t_quantile(confidence, sampled - 1) * error / self.everything


def _estimate(
    changes: Sequence[float], counts: Sequence[int], total: int, census: int, total_tokens: int | None
) -> _Estimate:
    n, tokens = len(changes), int(sum(counts))
    census = min(census, total)
    whole = sum(changes) / tokens
    sampled = n - census
    rest_total = total - census
    if n >= total:
        return _Estimate(whole, max(sampled, rest_total), rest_total, None, float(tokens), complete=True)
    if sampled < 1:  # part of the census measured: nothing bounds the rest
        return _Estimate(whole, sampled, rest_total, None, float(tokens))
    known_changes, known_tokens = sum(changes[:census]), sum(counts[:census])
    rest_changes, rest_counts = changes[census:], counts[census:]
    rate = sum(rest_changes) / sum(rest_counts)  # the sampled stratum's change per token
    rest_tokens = total_tokens - known_tokens if total_tokens is not None else sum(rest_counts) / sampled * rest_total
    everything = known_tokens + rest_tokens
    mean = (known_changes + rate * rest_tokens) / everything
    spread = None
    if sampled >= 2:
        residuals = [d - rate * c for d, c in zip(rest_changes, rest_counts)]
        spread = math.sqrt(sum(r * r for r in residuals) / (sampled - 1))  # per sequence
    return _Estimate(mean, sampled, rest_total, spread, everything)


def _ratio(log_ratio: float) -> float:
    if log_ratio == math.inf or log_ratio > 700:
        return math.inf
    if log_ratio == -math.inf or log_ratio < -700:
        return 0.0
    return math.exp(log_ratio)


__all__ = ["CONFIDENCE", "MIN_SEQUENCES", "Settled", "bound", "t_quantile"]
