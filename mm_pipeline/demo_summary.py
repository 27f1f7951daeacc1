"""The short report printed at the end of ``make demo``."""

from __future__ import annotations

import pandas as pd

from mm_pipeline.layout import Layout


def print_summary(layout: Layout, batches: list[str]) -> None:
    print("\nbatch            accepted  rejected")
    for batch in batches:
        accepted, rejected = layout.raw_accepted(batch), layout.raw_rejected(batch)
        n_acc = len(pd.read_parquet(accepted, columns=["nm"])) if accepted.exists() else "-"
        n_rej = len(pd.read_parquet(rejected, columns=["nm"])) if rejected.exists() else "-"
        print(f"{batch:<16} {n_acc:>8}  {n_rej:>8}")
    print(f"\noutputs under {layout.store}:")
    for folder in sorted(p for p in layout.store.iterdir() if p.is_dir()) if layout.store.exists() else []:
        print(f"  {folder}")
