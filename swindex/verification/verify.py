"""Measure what an entry's claimed weights do to a loaded model (the paper's section 3 ablations).

Runs, all on the same inputs: the model as loaded; each claimed weight zeroed alone; all zeroed; a control
with as many other weights zeroed (for each claim, the largest-magnitude other scalar of the same tensor,
or of the same expert's slice: the paper's "prune non-SW"); and all zeroed with the super activation put
back (the paper's Table 1 ablation: where the original pass had the super activation, at least half the
largest |output| seen in the claim's channel, the down projection's output is restored). Every change is
undone bit for bit before the next run.

`verify` is four steps, each a function over records: `plan.load` (model and entry), `plan.plan` (inputs,
ablations, control), `ablations.measure` (the passes, the fast way where it applies) and `report` here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._dtypes import dtype_name
from ..version import tool
from ..records import Coordinate, RatioBound
from ..surgery import read_value
from .ablations import RESTORE_FRACTION, SAME_PEAK, Measured, measure
from .curve import scale_curve
from .inputs import DEFAULT_TEXT
from .measure import Pass, embedding_shift
from .plan import Plan, Settings, Subject, control_targets, fingerprint, load, plan
from ..claims import classify
from .report import THRESHOLDS, SettledFigure, Stopword, VerificationReport, WeightResult
from .settle import Settled


def verify(
    model_or_id: Any,
    entry: Any = None,
    *,
    revision: str | None = None,
    tokenizer: Any = None,
    dtype: str = "auto",
    device: str = "auto",
    offload_folder: str | None = None,
    trust_remote_code: bool = False,
    registry: str | None = None,
    sequences: int | None = None,
    length: int | None = None,
    text: str = DEFAULT_TEXT,
    seed: int = 0,
    batch_size: int = 4,
    stopwords: int = 5,
    method: str = "auto",
    sequential: bool = True,
    today: str | None = None,
    progress: Callable[[str], None] | None = None,
    scale_curves: bool = True,
    refuse_mismatch: bool = False,
) -> VerificationReport:
    """Measure an entry's claims on a model (a loaded transformers model, a Hub id or a local directory).

    ``entry`` defaults to the registry's entry for the model (``swindex.lookup``); it may also be an Entry,
    a registry-format dict or a YAML file. Without a tokenizer, a causal LM is measured on sequences it
    samples itself (seeded). ``method`` is ``auto`` (every exact shortcut that applies: see
    `swindex.verification.fast`) or ``plain``; ``sequential`` (a causal LM's default) measures each weight
    alone sequence by sequence and stops once its class is settled (`swindex.verification.settle`); ``today``
    (YYYY-MM-DD) dates the run, by default `swindex.dates.today`. ``scale_curves`` measures each critical weight's
    scale curve (`curve.SCALES`), which `swindex check` judges by. ``refuse_mismatch`` stops before measuring
    when the recorded values are not the loaded ones (FingerprintMismatchError, as `swindex.verification.record`
    would refuse the report), for a caller that only records the run. The model is left exactly as it was found.
    """
    from ..dates import parse_date
    from ..dates import today as system_today

    date = parse_date(today, "today") if today is not None else system_today()
    settings = Settings(
        revision=revision,
        dtype=dtype,
        device=device,
        offload_folder=offload_folder,
        trust_remote_code=trust_remote_code,
        registry=registry,
        sequences=sequences,
        length=length,
        text=text,
        seed=seed,
        batch_size=batch_size,
        stopwords=stopwords,
        method=method,
        sequential=sequential,
    )
    say = progress or (lambda message: None)
    subject = load(model_or_id, entry, settings, tokenizer=tokenizer, say=say)
    planned = plan(subject, settings, say=say)
    if refuse_mismatch:
        from .apply import refuse_mismatch as refuse

        refuse(subject.entry, planned.fingerprint)
    measured = measure(
        planned.evaluation,
        planned.ablations,
        planned.control,
        method=settings.method,
        sequential=settings.sequential,
        say=say,
    )
    curves = _curves(planned, measured, say) if scale_curves and planned.evaluation.causal else {}
    return report(subject, planned, measured, today=date, curves=curves)


def _curves(
    planned: Plan, measured: Measured, say: Callable[[str], None]
) -> dict[int, tuple[tuple[float, float, float], ...]]:
    """The scale curve of each claim zeroing measured critical, by its position among the ablations."""
    base = measured.original.perplexity
    curves = {}
    for i, (ablation, p) in enumerate(zip(planned.ablations, measured.alone)):
        ratio = p.perplexity / base if base and p.perplexity is not None else None
        if classify(planned.metric, ratio) == "critical":
            curves[i] = scale_curve(planned.evaluation, ablation.target, base, say=say)
    return curves


def report(
    subject: Subject, planned: Plan, measured: Measured, *, today: str, curves: dict[int, Any] | None = None
) -> VerificationReport:
    """The figures of every pass, per claim and for the entry, as a VerificationReport dated ``today``."""
    model, evaluation, metric = subject.model, planned.evaluation, planned.metric
    original = measured.original

    def score(p: Pass) -> tuple[float | None, float | None]:
        """(metric, similarity shift) of a pass against the original."""
        if evaluation.causal:
            return p.perplexity, None
        return embedding_shift(original.embeddings, p.embeddings)

    base = original.perplexity if evaluation.causal else 0.0
    results = []
    settled = measured.settled or (None,) * len(measured.alone)
    for i, (claim, ablation, p, bound) in enumerate(zip(subject.claims, planned.ablations, measured.alone, settled)):
        value, similarity = score(p)
        ratio = (value / base if base else None) if evaluation.causal and value is not None else value
        activation, where = _spike(original.channels.get(ablation.channel) or [])
        results.append(
            WeightResult(
                location=Coordinate.from_dict(claim),
                status=claim.get("status"),
                recorded_value=claim.get("value"),
                loaded_value=read_value(model, (claim["tensor"], claim["index"])),
                zeroed=value,
                ratio=ratio,
                classification=classify(metric, ratio),
                super_activation=activation,
                super_activation_zeroed=_at_peak(
                    original.channels.get(ablation.channel) or [], p.channels.get(ablation.channel) or [], where
                ),
                similarity_shift=similarity,
                scale_curve=(curves or {}).get(i),
                tokens=bound.tokens if bound is not None else None,
                bound=_holding(bound, ratio),
            )
        )
    all_value, similarity = score(measured.together) if measured.together is not None else (None, None)
    stop: tuple[Stopword, ...] = ()
    if evaluation.causal and measured.together is not None:
        together = measured.together
        stop = tuple(
            Stopword(t, _decode(subject.tokenizer, t), original.stop_probs[t], together.stop_probs[t])
            for t in evaluation.stop_ids
        )
    figures = {
        "all_zeroed": all_value,
        "control": score(measured.control)[0] if measured.control is not None else None,
        "restored_activation": score(measured.restored)[0] if measured.restored is not None else None,
    }
    settled_figures = {}
    for name, s in measured.joint_settled.items():
        value = figures.get(name)
        ratio = value / base if base and value is not None else None
        holding = _holding(s, ratio)
        if holding is not None:
            settled_figures[name] = SettledFigure(s.tokens, holding)
    parameter = next(model.parameters())
    return VerificationReport(
        model=subject.model_id,
        entry_id=subject.entry.get("id"),
        revision=subject.revision,
        dtype=dtype_name(parameter.dtype),
        device=str(next((p.device for p in model.parameters() if p.device.type != "meta"), "meta")),
        date=today,
        tool=tool("verify"),
        metric=metric,
        text=evaluation.inputs.source,
        sequences=int(evaluation.inputs.input_ids.shape[0]),
        tokens=evaluation.inputs.tokens,
        original=base,
        all_zeroed=all_value,
        control=figures["control"],
        restored_activation=figures["restored_activation"],
        weights=tuple(results),
        control_weights=tuple(t.coordinate for t in planned.control),
        fingerprint=planned.fingerprint,
        stopwords=stop,
        similarity_shift=similarity,
        notes=(*planned.notes, *measured.notes),
        thresholds=dict(THRESHOLDS[metric]),
        method=str(measured.method),
        settled=settled_figures,
    )


def _holding(settled: Settled | None, ratio: float | None) -> RatioBound | None:
    """The bound as recorded: widened by float rounding to hold the reported ratio (zeroed / original perplexity)."""
    if settled is None:
        return None
    if ratio is None or not math.isfinite(ratio):
        return RatioBound(settled.low, settled.high, settled.confidence)
    return RatioBound(min(settled.low, ratio), max(settled.high, ratio), settled.confidence)


def _spike(values: list[Any]) -> tuple[float | None, tuple[int, int] | None]:
    """The signed value with the largest magnitude over all captured calls, and where (call, flat index)."""
    best: tuple[float, tuple[int, int]] | None = None
    for call, tensor in enumerate(values):
        flat = tensor.reshape(-1)
        if flat.numel() == 0:
            continue
        i = int(flat.abs().argmax())
        v = float(flat[i])
        if best is None or abs(v) > abs(best[0]):
            best = (v, (call, i))
    return (None, None) if best is None else best


def _at(values: list[Any], where: tuple[int, int] | None) -> float | None:
    if where is None or where[0] >= len(values):
        return None
    flat = values[where[0]].reshape(-1)
    if where[1] >= flat.numel():
        return None
    value = float(flat[where[1]])
    return None if math.isnan(value) else value  # NaN: a sequence a settled ablation never measured


def _at_peak(original: list[Any], zeroed: list[Any], where: tuple[int, int] | None) -> float | None:
    """The zeroed pass's value where the original peaks; where other places hold the same peak (the first token of
    every sequence, `SAME_PEAK`) and a settled pass did not measure this one, at the first of them it measured."""
    value = _at(zeroed, where)
    if value is not None or where is None:
        return value
    peak = abs(float(original[where[0]].reshape(-1)[where[1]]))
    for call, (before, after) in enumerate(zip(original, zeroed)):
        before, after = before.reshape(-1), after.reshape(-1)
        if before.shape != after.shape:
            continue
        for i in (before.abs() >= (1 - SAME_PEAK) * peak).nonzero().flatten().tolist():
            value = _at(zeroed, (call, i))
            if value is not None:
                return value
    return None


def _decode(tokenizer: Any | None, token: int) -> str | None:
    if tokenizer is None:
        return None
    try:
        return tokenizer.decode([token])
    except Exception:  # noqa: BLE001 - a token without text is shown by id
        return None


__all__ = ["verify", "report", "fingerprint", "control_targets", "RESTORE_FRACTION"]
