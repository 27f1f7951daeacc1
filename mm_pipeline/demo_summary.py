"""The short report printed at the end of ``make demo``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from mm_pipeline.evaluation.summary import MetricSummary
from mm_pipeline.layout import Layout

if TYPE_CHECKING:
    from mm_pipeline.defs.in_process.runner import CheckOutcome


def rejection_kinds(reasons: pd.Series, top: int = 3) -> list[str]:
    """The ``top`` most common kinds of ``reject_reason`` (the text before its first ":"), most common first,
    each as "<count> × <kind>, e.g. <a full reason>"."""
    kinds = reasons.astype(str).str.split(":", n=1).str[0]
    return [
        f"{count} × {kind}, e.g. {reasons[kinds == kind].iloc[0]}"
        for kind, count in kinds.value_counts().head(top).items()
    ]


def print_summary(layout: Layout, batches: Sequence[str], checks: Sequence[CheckOutcome]) -> None:
    print("\nbatch            accepted  rejected")
    for batch in batches:
        accepted, rejected = layout.raw_accepted(batch), layout.raw_rejected(batch)
        n_acc = len(pd.read_parquet(accepted, columns=["nm"])) if accepted.exists() else "-"
        reasons = pd.read_parquet(rejected, columns=["reject_reason"]) if rejected.exists() else None
        print(f"{batch:<16} {n_acc:>8}  {'-' if reasons is None else len(reasons):>8}")
        if reasons is not None and len(reasons):
            print(f"  rejected rows with their reason: {rejected}")
            print("\n".join(f"    {line}" for line in rejection_kinds(reasons["reject_reason"])))
    print("\ncheck                     result  verdict")
    for check in checks:
        print(f"{check.check:<25} {'pass' if check.passed else 'FAIL':<7} {check.verdict}")
    for task_file in layout.metric_summaries():
        summary = MetricSummary.load(task_file)
        if summary.fused_f1 is not None:
            line = f"  {summary.task:<14} fused F1 {summary.fused_f1:.3f}  base {summary.base_fused_f1:.3f}"
            if summary.fused_minus_best_reference is not None:
                line += f"  minus best no-learning reference {summary.fused_minus_best_reference:+.3f}"
            print(line)
    published = layout.published_embeddings
    if any(not c.passed for c in checks):
        print("published_embeddings: NOT updated — a gate failed, consumers keep the previous version")
    elif published.exists():
        print(f"published_embeddings: {published}")
    print(f"\noutputs under {layout.store}:")
    for folder in (
        sorted(p for p in layout.store.iterdir() if p.is_dir() and not p.name.startswith("."))
        if layout.store.exists()
        else []
    ):
        print(f"  {folder}")
