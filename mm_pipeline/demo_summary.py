"""The short report printed at the end of ``make demo``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from mm_pipeline.evaluation.summary import MetricSummary
from mm_pipeline.layout import Layout

if TYPE_CHECKING:
    from mm_pipeline.defs.in_process.runner import CheckOutcome


def print_summary(layout: Layout, batches: Sequence[str], checks: Sequence[CheckOutcome]) -> None:
    print("\nbatch            accepted  rejected")
    for batch in batches:
        accepted, rejected = layout.raw_accepted(batch), layout.raw_rejected(batch)
        n_acc = len(pd.read_parquet(accepted, columns=["nm"])) if accepted.exists() else "-"
        n_rej = len(pd.read_parquet(rejected, columns=["nm"])) if rejected.exists() else "-"
        print(f"{batch:<16} {n_acc:>8}  {n_rej:>8}")
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
