"""The quality report of ``make quality``: per catalogue, one table of every vector kind against the
references that learn nothing, read from the metric folders a pipeline run left (no Dagster here).

Rows are tasks (probe F1 of the best probe, and neighbour precision@5; duplicates: pair F1 and recall@5),
columns the vector kinds. A cell is ``value±standard error``, or ``–`` where the run did not produce it
(a column, a row or a file missing), so the report reads any version of the metric tables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mm_pipeline.evaluation.labels import TASKS
from mm_pipeline.evaluation.summary import MetricSummary, read_summary
from mm_pipeline.layout import Layout

MISSING = "–"
# column → (model, features: None = any) in the task tables, and the kind in the duplicates table
KINDS = {
    "fused": ("fine_tuned", "fused", "fused"),
    "text": ("fine_tuned", "text", "text"),
    "image": ("fine_tuned", "image", "image"),
    "lexical": ("fine_tuned", "lexical", "lexical"),
    "TF-IDF": ("tfidf", None, "tfidf"),
    "pixels": ("pixels", None, "pixels"),
    "TF-IDF+pix": ("tfidf+pixels", None, "tfidf+pixels"),
    "base fused": ("base", "fused", "base_fused"),
}
NEIGHBOURS_K = 5
CELL = 12
# the quality targets each set is held to (see target_lines)
TARGETS = (
    "fused F1 ≥ best reference − 1 SE",
    "fused P@5 ≥ TF-IDF P@5 − 1 SE",
    "image F1 ≥ pixels F1",
    "fine-tuned F1 ≥ base F1",
)
NEIGHBOUR_TARGET_TASKS = ("category", "sub_category")
QUALITY_SECONDS = 360  # make quality on the shared sets
REPORT_WIDTH = 118


SET_FILE = "products.parquet"  # a set is a folder with this file and ``images/<nm>.jpg``


def find_sets(data: Path, expected: Sequence[str] = ()) -> list[str]:
    """The sets to run from ``data``: the ``expected`` names first (whether present or not, so that a
    missing one is reported), then every other folder of ``data`` that holds a ``SET_FILE``, by name."""
    found = sorted(path.parent.name for path in Path(data).glob(f"*/{SET_FILE}"))
    return list(dict.fromkeys([*expected, *found]))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``unknown CPU`` where there is none), with the core count."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
        if line.startswith("model name")
    ]
    return f"{names[0] if names else 'unknown CPU'}, {os.cpu_count()} cores"


def _cell(value: float | None, se: float | None = None) -> str:
    if value is None or math.isnan(value):
        return MISSING
    if se is None or math.isnan(se):
        return f"{value:.3f}"
    return f"{value:.3f}±{se:.3f}"


def _signed(gap: float, se: float | None) -> str:
    return f"{gap:+.3f}" if se is None or not math.isfinite(se) else f"{gap:+.3f}±{se:.3f}"


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def _select(table: pd.DataFrame, model: str, features: str | None) -> pd.DataFrame:
    if table.empty or "model" not in table:
        return table.iloc[0:0]
    rows = table[table["model"] == model]
    if features is not None:
        rows = rows[rows["features"] == features] if "features" in rows else rows.iloc[0:0]
    return rows


def _best(rows: pd.DataFrame, value: str, se: str) -> str:
    """``value±se`` of the row with the highest ``value`` (``–`` when there is no such row or column)."""
    if value not in rows or rows[value].isna().all():
        return MISSING
    best = rows.loc[rows[value].idxmax()]
    return _cell(float(best[value]), float(best[se]) if se in best else None)


def task_rows(layout: Layout, task: str) -> list[tuple[str, str, list[str]]]:
    """``(task, metric, cells in KINDS order)`` rows of one task's metric folder (``[]`` when it has none).

    Label tasks give ``probe F1`` (best probe per kind, ``f1``/``f1_se`` of ``table.parquet``) and
    ``P@5`` (``precision``/``se`` at ``k == 5`` of the neighbours table); ``duplicates`` gives ``pair F1``
    and ``R@5`` (``pair_f1``/``recall@5`` per ``kind``). A task whose summary status is not ``ok`` gives one
    row whose last cell says why.
    """
    summary = _summary(layout, task)
    if summary is None:
        return []
    if not summary.ok:
        reason = f"{summary.status}: {summary.reason or ''}".strip(": ")
        return [(task, "", [reason])]
    table = _read(layout.metric_table(task))
    if task == "duplicates":
        by_kind = table.set_index("kind") if "kind" in table else pd.DataFrame()
        rows = []
        for metric, column, se in (("pair F1", "pair_f1", "pair_f1_se"), ("R@5", "recall@5", None)):
            cells = [
                _cell(float(by_kind.loc[kind, column]), by_kind.loc[kind].get(se) if se else None)
                if kind in by_kind.index and column in by_kind
                else MISSING
                for _, _, kind in KINDS.values()
            ]
            rows.append((task if metric == "pair F1" else "", metric, cells))
        return rows
    neighbours = _read(layout.metric_neighbours(task))
    if "k" in neighbours:
        neighbours = neighbours[neighbours["k"] == NEIGHBOURS_K]
    probe = [_best(_select(table, model, features), "f1", "f1_se") for model, features, _ in KINDS.values()]
    nearest = [
        _best(_select(neighbours, model, features), "precision", "se")
        for model, features, _ in KINDS.values()
    ]
    return [(task, "probe F1", probe), ("", f"P@{NEIGHBOURS_K}", nearest)]


def _summary(layout: Layout, task: str) -> MetricSummary | None:
    return read_summary(layout, task) if layout.metric_summary(task).exists() else None


def _gap(layout: Layout, task: str) -> str:
    """``fused_minus_best_reference`` (± its standard error) of a task's summary, ``–`` when absent."""
    summary = _summary(layout, task)
    if summary is None or summary.fused_minus_best_reference is None:
        return MISSING
    return _cell(summary.fused_minus_best_reference, summary.fused_minus_best_reference_se)


def _best_f1(layout: Layout, task: str, model: str, features: str | None) -> float | None:
    rows = _select(_read(layout.metric_table(task)), model, features)
    return float(rows["f1"].max()) if "f1" in rows and rows["f1"].notna().any() else None


def target_lines(layout: Layout) -> list[str]:
    """The quality targets on one set, one line per target listing each task it covers as ``task value
    pass|MISS``, then how many were met (``[]`` when no task was scored):

    * fused F1 ≥ the best reference's − 1 SE (every scored task, duplicates included: pair F1);
    * fused neighbour precision@5 ≥ TF-IDF's − 1 SE (``NEIGHBOUR_TARGET_TASKS``);
    * image F1 ≥ the pixel reference's (``NEIGHBOUR_TARGET_TASKS``);
    * fine-tuned fused F1 ≥ the base model's (every scored task).

    SE is the paired bootstrap standard error of the gap, from each summary (a missing or non-finite one
    allows nothing); the other two rules allow no noise, their ``±`` is shown for reading. A task that was not
    scored, or a figure its files lack, is left out; a target with nothing to check reads ``–``."""
    scored = {
        task: summary
        for task in [*(t.name for t in TASKS), "duplicates"]
        if (summary := _summary(layout, task)) is not None and summary.ok
    }
    targets: dict[str, list[tuple[str, str, bool]]] = {name: [] for name in TARGETS}

    def within_noise(target: str, task: str, gap: float | None, se: float | None) -> None:
        if gap is not None and math.isfinite(gap):
            se = se if se is not None and math.isfinite(se) else None
            targets[target].append((task, _signed(gap, se), gap >= -(se or 0.0)))

    for task, summary in scored.items():
        within_noise(
            TARGETS[0], task, summary.fused_minus_best_reference, summary.fused_minus_best_reference_se
        )
        gain = summary.fused_f1_minus_base
        if gain is not None and math.isfinite(gain):
            targets[TARGETS[3]].append((task, _signed(gain, summary.fused_f1_minus_base_se), gain >= 0))
        if task not in NEIGHBOUR_TARGET_TASKS:
            continue
        details = summary.details
        gap = details.get("fused_minus_tfidf_neighbour_precision_at_5")
        within_noise(TARGETS[1], task, gap, details.get("fused_minus_tfidf_neighbour_precision_at_5_se"))
        image, pixels = _best_f1(layout, task, "fine_tuned", "image"), _best_f1(layout, task, "pixels", None)
        if image is not None and pixels is not None:
            targets[TARGETS[2]].append((task, f"{image:.3f} vs {pixels:.3f}", image >= pixels))
    checks = [check for found in targets.values() for check in found]
    if not checks:
        return []
    met = sum(check[2] for check in checks)
    lines = [f"targets: {met} of {len(checks)} met (SE: the standard error of the gap)"]
    indent = max(map(len, TARGETS)) + 4
    for name, found in targets.items():
        entries = [f"{task} {value} {'pass' if ok else 'MISS'}" for task, value, ok in found]
        line = f"  {name}".ljust(indent)
        for position, entry in enumerate(entries):
            separator = "," if position < len(entries) - 1 else ""
            if len(line) > indent and len(line) + len(entry) + 1 > REPORT_WIDTH:
                lines.append(line.rstrip())
                line = " " * indent
            line += entry + separator + " "
        lines.append(line.rstrip() if entries else line + MISSING)
    return lines


def format_report(name: str, layout: Layout, wall_seconds: float, cpu_seconds: float) -> str:
    """One catalogue's table: tasks in ``TASKS`` order then duplicates, columns ``KINDS`` and the fused vector's
    gap to the best reference (from each summary), with the run's wall and CPU time in the title, then the
    quality targets (:func:`target_lines`)."""
    header = ["task", "metric", *KINDS, "fused−best ref"]
    widths = [14, 9, *[CELL] * len(KINDS), CELL + 2]
    title = f"{name}: whole graph {wall_seconds:.0f} s wall, {cpu_seconds:.0f} s CPU"
    lines = [title, _join(header, widths)]
    for task in [*(t.name for t in TASKS), "duplicates"]:
        rows = task_rows(layout, task)
        for position, (label, metric, cells) in enumerate(rows):
            gap = _gap(layout, task) if position == 0 and metric else ""
            lines.append(_join([label, metric, *cells, gap], widths))
    if len(lines) == 2:
        lines.append(f"(no metrics under {layout.metrics_dir})")
    return "\n".join([*lines, *target_lines(layout)])


def _join(cells: list[str], widths: list[int]) -> str:
    return " ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=False)).rstrip()
