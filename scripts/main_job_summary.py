"""The main job's last words: for each model of a registry, which weights matter, with the measured figures.

    python scripts/main_job_summary.py REGISTRY_DIR

Why: the builder's table says what was written; a person running the job wants the verdict per model, the
weights that are critical (with the perplexity ratio zeroing each one gives) and what zeroing every candidate
together does. Everything is read back from the written entries, so the summary shows what the registry says.
"""

from __future__ import annotations

import math

import sys
from pathlib import Path
from typing import Any

ORDER = {"critical": 0, "significant": 1, "inert": 2, "unmeasured": 3}


def _num(value: Any) -> str:
    return "?" if value is None else f"{value:.4g}"


def _times(ratio: float) -> str:
    return f"x{ratio:,.0f}" if ratio >= 1000 else f"x{ratio:.3g}"


def _ratio(claim: Any, metric: str | None) -> str:
    impact = claim.impact
    if impact.ratio is None:
        return ""
    if metric == "embedding_shift":
        return f"embedding shift {impact.ratio:.3g}"
    bound = impact.bound
    if bound is not None and not math.isclose(bound.low, bound.high, rel_tol=1e-6):
        # settled early (sequential verification): the ratio is an estimate inside the bound that settled its class
        tokens = f" on {impact.tokens:,} tokens" if impact.tokens else ""
        return (
            f"perplexity ~{_times(impact.ratio)} ({_num(impact.original)} -> ~{_num(impact.zeroed)}; "
            f"estimate, {bound}{tokens})"
        )
    return f"perplexity {_times(impact.ratio)} ({_num(impact.original)} -> {_num(impact.zeroed)})"


def _activation(claim: Any) -> str:
    impact = claim.impact
    if impact.super_activation is None or impact.super_activation_zeroed is None:
        return ""
    return f"super activation {impact.super_activation:,.0f} -> {impact.super_activation_zeroed:,.0f}"


def _gguf_name(claim: Any) -> str:
    from swindex.layout import gguf_index, gguf_tensor_names

    index = ", ".join(str(i) for i in gguf_index(claim.row, claim.column, claim.expert))
    return f"{gguf_tensor_names(claim.tensor, claim.layer, claim.expert)[0]}[{index}]"  # shared experts: ffn_down_shexp


def describe(entry: Any) -> list[str]:
    """A few lines for one entry: verdict, the run's figures, then each measured claim (critical first)."""
    run = dict(entry.evidence.get("verification") or {})
    artifact = run.get("artifact") or dict(entry.evidence.get("detection") or {}).get("artifact")
    metric = run.get("metric") or entry.verdict.metric
    head = f"{entry.id}: {entry.verdict.text}"
    if artifact:
        origin = (
            f" from {artifact['repository']}@{artifact['revision'][:12]}"
            if artifact.get("repository") and artifact.get("revision")
            else ""
        )
        head += (
            f"   [measured on {artifact['file']}, {artifact['format'].upper()} "
            f"{artifact.get('quantization') or ''}{origin}]"
        ).replace(" ,", ",")
    lines = [head]
    if metric == "perplexity" and run.get("original") is not None:
        from swindex.records import RatioBound

        settled = run.get("settled") or {}

        def estimate(name: str) -> str:
            """Where the figure was settled early: an estimate, with the tokens and bound that settled it."""
            figure = settled.get(name)
            if not figure:
                return ""
            bound = RatioBound.from_dict(figure["bound"])
            if math.isclose(bound.low, bound.high, rel_tol=1e-6):
                return ""  # settled only on the whole text: the figure is exact
            return f" (estimate, ratio {bound} on {figure['tokens']:,} tokens)"

        figures = [f"perplexity as loaded {_num(run.get('original'))}"]
        if run.get("all_zeroed") is not None:
            joint = f" ({_times(run['all_zeroed'] / run['original'])})" if run["original"] else ""
            figures.append(f"all zeroed together {_num(run['all_zeroed'])}{joint}{estimate('all_zeroed')}")
        if run.get("restored_activation") is not None:
            restored = _num(run["restored_activation"])
            figures.append(f"all zeroed, super activation restored {restored}{estimate('restored_activation')}")
        if run.get("control") is not None:
            figures.append(f"control {_num(run['control'])}{estimate('control')}")
        lines.append("  " + "; ".join(figures))
    elif metric == "embedding_shift" and run.get("all_zeroed") is not None:
        lines.append(f"  embedding shift with all zeroed together {_num(run['all_zeroed'])}")
    claims = sorted(entry.claims, key=lambda c: (ORDER.get(c.impact.classification, 9), -(c.impact.ratio or 0)))
    inert = [c for c in claims if c.impact.classification == "inert"]
    for claim in claims:
        if claim.impact.classification == "inert":
            continue
        mark = (
            "super weight"
            if claim.is_super_weight
            else "kept when quantizing"
            if claim.impact.classification == "significant"
            else ""
        )
        parts = [
            f"{claim.impact.classification:<11} layer {claim.layer} [{claim.row}, {claim.column}]",
            _ratio(claim, metric),
            _activation(claim),
        ]
        if artifact and artifact.get("format") == "gguf":
            parts.append(_gguf_name(claim))
        parts.append(mark)
        lines.append("  " + "   ".join(p for p in parts if p))
    if inert:
        where = ", ".join(f"layer {c.layer} [{c.row}, {c.column}]" for c in inert)
        lines.append(f"  inert ({len(inert)}, not handed out as super weights): {where}")
    return lines


def main(argv: list[str]) -> int:
    from swindex.registry import load_registry

    if len(argv) != 1:
        print("usage: python scripts/main_job_summary.py REGISTRY_DIR", file=sys.stderr)
        return 2
    entries = load_registry(Path(argv[0]))
    print("Which weights matter (zero each one alone, then all together, and measure again):")
    for entry in sorted(entries, key=lambda e: e.id.casefold()):
        print("\n".join(describe(entry)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
