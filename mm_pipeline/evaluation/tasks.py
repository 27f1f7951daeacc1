"""Proxy-task evaluation of one embedding set against its references, and the metric gates.

For a task, every row of the result table says which model produced the features (``fine_tuned``,
``base`` — the model before fine-tuning — or ``tfidf``, a text baseline on the cleaned text), the feature
set and the probe, so each number is read against its references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mm_pipeline.evaluation.labels import TASKS, TaskSpec, derive_labels, log_price, price_bin_edges
from mm_pipeline.evaluation.probes import (
    InsufficientData,
    bootstrap_f1,
    cross_validate,
    regress_log_price,
    tfidf_baseline,
)
from mm_pipeline.inference.encoders import fuse, l2_normalize
from mm_pipeline.layout import Layout
from mm_pipeline.storage import atomic_dir, write_json, write_parquet

TASK_BY_NAME: dict[str, TaskSpec] = {task.name: task for task in TASKS}
INSUFFICIENT = "insufficient data"


@dataclass(frozen=True)
class EvalSet:
    """Eval-split products (never trained on) with fine-tuned and base-model vectors, rows aligned."""

    products: pd.DataFrame
    tuned: dict[str, np.ndarray]
    base: dict[str, np.ndarray]

    @classmethod
    def build(
        cls, products: pd.DataFrame, tuned: dict[str, np.ndarray], base: dict[str, np.ndarray]
    ) -> EvalSet:
        def complete(vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            image, text = l2_normalize(vectors["image"]), l2_normalize(vectors["text"])
            return {"text": text, "image": image, "fused": fuse(image, text)}

        return cls(products.reset_index(drop=True), complete(tuned), complete(base))


@dataclass
class TaskResult:
    task: str
    status: str  # "ok" or INSUFFICIENT
    reason: str = ""
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    headline: dict[str, float] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "task": self.task,
            "status": self.status,
            "reason": self.reason,
            **self.headline,
            **self.extras,
        }


def _best(table: pd.DataFrame, model: str, features: str = "fused") -> float:
    rows = table[(table["model"] == model) & (table["features"] == features)]
    return float(rows["f1"].max()) if len(rows) else float("nan")


def evaluate_task(task_name: str, data: EvalSet, n_splits: int = 5, seed: int = 0) -> TaskResult:
    task = TASK_BY_NAME[task_name]
    prices = data.products["price"] if "price" in data.products else pd.Series(dtype=float)
    edges = price_bin_edges(prices) if (pd.to_numeric(prices, errors="coerce") > 0).any() else None
    labels = derive_labels(data.products, price_bin_edges=edges)[task_name]
    known = labels.notna().to_numpy()
    y = labels[known].astype(str).to_numpy()
    try:
        tables, best_fused = [], []
        for model, vectors in (("fine_tuned", data.tuned), ("base", data.base)):
            run = cross_validate(
                {k: v[known] for k, v in vectors.items()},
                y,
                task.kind,
                n_splits,
                seed,
                positive_label=task.positive_label,
            )
            frame = run.table()
            tables.append(frame.assign(model=model))
            fused = frame[frame["features"] == "fused"]
            best_fused.append(run.predictions["fused", fused.loc[fused["f1"].idxmax(), "probe"]])
        texts = data.products.loc[known, "text"].tolist()
        tfidf = tfidf_baseline(
            texts, y, task.kind, n_splits=n_splits, seed=seed, positive_label=task.positive_label
        )
        tables.append(tfidf.assign(model="tfidf"))
    except InsufficientData as exc:
        return TaskResult(task_name, INSUFFICIENT, exc.reason, extras={"labelled": int(known.sum())})
    table = pd.concat(tables, ignore_index=True)
    table = table[["model", *[c for c in table.columns if c != "model"]]]
    headline = {
        "fused_f1": _best(table, "fine_tuned"),
        "base_fused_f1": _best(table, "base"),
        "tfidf_f1": float(table.loc[table["model"] == "tfidf", "f1"].max()),
    }
    headline["fused_f1_minus_base"] = headline["fused_f1"] - headline["base_fused_f1"]
    tuned_f1, base_f1 = bootstrap_f1(run.prepared, best_fused, seed=seed)
    headline["fused_f1_se"] = float(np.std(tuned_f1))
    headline["fused_f1_minus_base_se"] = float(np.std(tuned_f1 - base_f1))
    extras = {"labelled": int(known.sum()), "classes": int(len(set(y)))}
    if task_name == "price_range":
        extras["bin_edges_rub"] = [round(float(e), 2) for e in np.exp(edges)] if edges is not None else []
        target = np.asarray(log_price(data.products["price"]), dtype=float)
        for model, vectors in (("fine_tuned", data.tuned), ("base", data.base)):
            regression = regress_log_price({"fused": vectors["fused"]}, target, n_splits, seed)["fused"]
            extras[f"{model}_log_price_mse"] = regression["mse"]
            extras[f"{model}_log_price_mae"] = regression["mae"]
        extras["mean_predictor_log_price_mse"] = regression["baseline_mse"]
    return TaskResult(task_name, "ok", table=table, headline=headline, extras=extras)


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: list[str]


NOISE_Z = 1.645  # one-sided 95%: a shortfall counts only when it exceeds sampling noise


def save_metric(layout: Layout, task_name: str, summary: dict, table: pd.DataFrame) -> Path:
    """A metric's summary and table, replaced together (a task without enough data has no table)."""
    with atomic_dir(layout.metric_dir(task_name)) as folder:
        write_json(summary, folder / layout.metric_summary(task_name).name)
        if not table.empty:
            write_parquet(table, folder / layout.metric_table(task_name).name)
    return layout.metric_dir(task_name)


def judge(summary: dict, min_f1: float, max_drop_vs_base: float, noise_z: float = NOISE_Z) -> GateVerdict:
    """A gate fails when fused F1 is under its floor or the fine-tuned model trails the base by more than allowed.

    Both are judged against the sampling noise of the eval split: bootstrap standard errors of the fused F1
    (``fused_f1_se``) and of the paired fine-tuned − base difference (``fused_f1_minus_base_se``), times
    ``noise_z``, are granted on top. A small binary task whose F1 moves by a few products then does not
    block publishing, while on a large eval split the errors shrink and the thresholds become exact;
    ``noise_z=0`` makes them exact always.

    Tasks without enough labelled data pass with their reason recorded: a catalogue without, say, adult
    goods must not block publishing.
    """
    if summary["status"] != "ok":
        return GateVerdict(True, [f"{INSUFFICIENT}: {summary.get('reason', '')}"])
    reasons = []
    slack = noise_z * summary.get("fused_f1_se", 0.0)
    if summary["fused_f1"] + slack < min_f1:
        reasons.append(
            f"fused F1 {summary['fused_f1']:.3f} is below the floor {min_f1:.3f} (noise {slack:.3f})"
        )
    drop, noise = -summary["fused_f1_minus_base"], noise_z * summary.get("fused_f1_minus_base_se", 0.0)
    if drop > max_drop_vs_base + noise:
        reasons.append(
            f"fine-tuned fused F1 trails the base model by {drop:.3f} "
            f"(allowed {max_drop_vs_base:.3f} + noise {noise:.3f})"
        )
    return GateVerdict(not reasons, reasons)
