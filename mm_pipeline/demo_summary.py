"""The short reports of the CLI: the one printed at the end of ``make demo`` and ``mm-pipeline run``
(:func:`print_summary`), and what a data dir holds now (:func:`store_status`, ``mm-pipeline status``)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow.parquet as pq

from mm_pipeline.evaluation.summary import MetricSummary
from mm_pipeline.layout import Layout
from mm_pipeline.publish.catalogue import read_onnx_manifest
from mm_pipeline.publish.record import current_manifest, list_versions
from mm_pipeline.publish.vectors import embeddings_model_versions

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
    for line in metric_lines(layout):
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
    hint = search_hint(layout)
    if hint:
        print(f"\nsearch the served catalogue: {hint}")


def search_hint(layout: Layout) -> str | None:
    """A ``mm-pipeline similar --text`` command line that searches this data dir's index with the first words
    of an indexed title (the script by its full path where it sits beside this Python), or ``None`` when
    there is no index."""
    from mm_pipeline.evaluation.catalogue_index import read_index_lookup  # faiss: only where an index is

    if not layout.index_lookup.exists():
        return None
    titles = read_index_lookup(layout)["title"].dropna()
    words = " ".join(str(titles.iloc[0]).split()[:3]) if len(titles) else ""
    if not words:
        return None
    data_dir = shlex.quote(str(layout.data_dir.absolute()))
    return f"{_cli()} similar --text {shlex.quote(words)} --data-dir {data_dir}"


def _cli() -> str:
    """How to call ``mm-pipeline`` from any folder: the script beside this Python (a virtual environment's
    ``bin``), else the name alone."""
    script = Path(sys.executable).with_name("mm-pipeline")
    return shlex.quote(str(script)) if script.exists() else "mm-pipeline"


def metric_lines(layout: Layout) -> list[str]:
    """One line per metric saved under ``layout``: its fused F1 against the base model and the best reference
    that learns nothing, or why it could not be scored."""
    lines = []
    for task_file in layout.metric_summaries():
        summary = MetricSummary.load(task_file)
        if summary.fused_f1 is None:
            lines.append(f"  {summary.task:<14} {summary.status}: {summary.reason or 'no score'}")
            continue
        line = f"  {summary.task:<14} fused F1 {summary.fused_f1:.3f}  base {summary.base_fused_f1:.3f}"
        if summary.fused_minus_best_reference is not None:
            line += f"  minus best no-learning reference {summary.fused_minus_best_reference:+.3f}"
        merged = summary.details.get("sub_categories_read_as_category")
        if merged:
            line += (
                f"  ({merged} sub-categories of under {summary.details['min_sub_category_products']} eval "
                f"products scored as their category: {summary.details['products_in_them']} products)"
            )
        lines.append(line)
    return lines


def _publication_gap(published: dict | None, rows: int, model: str) -> str:
    """How an embedded batch (``rows`` products, ``model`` versions) differs from what the published version
    serves of it (``published``: its entry in the manifest's ``batches``, ``None`` when absent), e.g. embedded
    since the last publication, or re-embedded by a new model whose gates have not passed; empty when the
    same."""
    if published is None:
        return "  (not in the published version)"
    if published.get("model_version", model) != model:
        return f"  (the published version serves it from model {published['model_version']})"
    if published["products"] != rows:
        return f"  (the published version holds {published['products']} products of it)"
    return ""


def store_status(layout: Layout) -> list[str]:
    """What ``layout``'s store holds now, read from its files alone (no Dagster instance): the ONNX export and
    its parity verdict, each embedded batch with its products and model versions, the metrics, and the
    published version (the asset checks' verdicts live in the Dagster instance; ``make ui`` shows them)."""
    lines = [f"data dir: {layout.data_dir.absolute()}"]
    if layout.onnx_manifest.exists():
        export = read_onnx_manifest(layout)["model_version"]
        if not layout.onnx_parity.exists():
            verdict = "not checked yet (materialize the onnx_parity check)"
        else:
            parity = json.loads(layout.onnx_parity.read_text())
            passed = ", ".join(parity.get("passed_variants", []))
            verdict = f"passed ({passed})" if parity.get("passed") else "FAILED (nothing is embedded with it)"
        lines.append(f"ONNX export {export}: parity {verdict}")
    else:
        lines.append("ONNX export: none yet (materialize onnx_model)")
    paths = {path.stem: path for path in sorted(layout.embeddings("*").parent.glob("*.parquet"))}
    versions = embeddings_model_versions(paths)
    published = current_manifest(layout)
    served = None if published is None else {b["batch"]: b for b in published["batches"]}
    lines.append(f"embedded batches: {len(paths)}")
    for batch, path in paths.items():
        rows, model = pq.ParquetFile(path).metadata.num_rows, ", ".join(versions[batch])
        line = f"  {batch:<20} {rows:>8} products  model {model or 'unknown'}"
        lines.append(line + ("" if served is None else _publication_gap(served.get(batch), rows, model)))
    metrics = metric_lines(layout)
    lines.append(f"metrics: {len(metrics)}")
    lines.extend(metrics)
    if published is None:
        lines.append("published: nothing yet (published_embeddings moves once every gate passes)")
    else:
        lines.append(
            f"published: version {published['version']} at {published['published_at']}, "
            f"{published['products']} products in {len(published['batches'])} batches, "
            f"model {', '.join(published['model_versions'])}; {len(list_versions(layout))} versions kept "
            f"({layout.published_embeddings})"
        )
    return lines
