"""Proxy-task evaluation of one embedding set against its references, and the metric gates.

For a task, every row of the probe table says which model produced the features — ``fine_tuned``, ``base``
(the model before fine-tuning), or a reference that learns nothing: ``tfidf`` (the cleaned text),
``pixels`` (24x24 thumbnails of the stored images) and ``tfidf+pixels`` — the feature set and the probe,
with F1 and its bootstrap standard error ``f1_se``, so each number is read against its references and its
noise. The neighbour table gives, for the same models, the share of each product's k nearest neighbours
that share its label (:mod:`mm_pipeline.evaluation.neighbours`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from mm_pipeline.evaluation.labels import (
    MIN_SUB_CATEGORY_PRODUCTS,
    TASKS,
    TaskSpec,
    derive_labels,
    log_price,
    price_bin_edges,
    rare_sub_categories,
)
from mm_pipeline.evaluation.neighbours import (
    KS,
    MAX_QUERIES,
    chance_precision,
    hit_shares,
    precision_and_se,
    sample_queries,
)
from mm_pipeline.evaluation.probes import (
    REFERENCE_FEATURES,
    FitQueue,
    InsufficientData,
    bootstrap_f1,
    cross_validate,
    reference_probes,
    regress_log_price,
    tfidf_counts,
    tfidf_of_counts,
)
from mm_pipeline.evaluation.references import pixel_vectors
from mm_pipeline.evaluation.summary import INSUFFICIENT, OK, MetricSummary
from mm_pipeline.inference.encoders import BASE_FUSION_WEIGHTS, fuse, l2_normalize
from mm_pipeline.layout import Layout
from mm_pipeline.model.split import group_codes
from mm_pipeline.storage import atomic_dir, write_json, write_parquet

TASK_BY_NAME: dict[str, TaskSpec] = {task.name: task for task in TASKS}
VECTOR_KINDS = ("text", "image", "lexical", "fused")  # the fine-tuned model's columns, in table order
NEIGHBOUR_COLUMNS = ["model", "features", "k", "precision", "se", "n"]
HEADLINE_K = 5


@dataclass(frozen=True)
class EvalSet:
    """Eval-split products (never trained on) with everything scored on them, rows aligned.

    * ``products``: the cleaned products (``text`` and the label columns), index 0..n-1.
    * ``tuned``: the fine-tuned model's vectors as stored, float32 ``[n, d]`` per kind of ``VECTOR_KINDS``
      that the embeddings have (``fused`` always).
    * ``base``: the base model's ``text`` and ``image`` (unit rows) and their ``fused`` vector
      (``BASE_FUSION_WEIGHTS``).
    * ``pixels``: float32 ``[n, 24*24*3]`` thumbnails of the stored images
      (:func:`mm_pipeline.evaluation.references.pixel_features`), probed with PCA fitted inside each fold.
    * ``tfidf`` (float32 CSR ``[n, terms]``) and ``pixel_vectors`` (float32 ``[n, 64]``): the references for
      neighbour search, unit rows fitted on the eval products (unsupervised).
    """

    products: pd.DataFrame
    tuned: dict[str, np.ndarray]
    base: dict[str, np.ndarray]
    pixels: np.ndarray
    tfidf: sparse.csr_matrix
    pixel_vectors: np.ndarray
    # the term counts behind ``tfidf`` (:func:`~mm_pipeline.evaluation.probes.tfidf_counts`), reused by every
    # task's TF-IDF probe instead of tokenising the texts again; empty: the probes count them
    tfidf_counts: tuple[sparse.csr_matrix, ...] = ()

    @classmethod
    def build(
        cls,
        products: pd.DataFrame,
        tuned: Mapping[str, np.ndarray],
        base: Mapping[str, np.ndarray],
        pixels: np.ndarray,
    ) -> EvalSet:
        """``tuned``: vector columns of the embeddings (kinds of ``VECTOR_KINDS``, ``fused`` required), taken
        as stored; ``base``: the base model's ``image`` and ``text`` vectors; ``pixels``: ``[n, d]``
        thumbnails. Raises ValueError for an unknown or missing kind or a row count other than
        ``len(products)``."""
        unknown = set(tuned) - set(VECTOR_KINDS)
        if unknown or "fused" not in tuned:
            raise ValueError(f"tuned vectors {sorted(tuned)}: need 'fused', may have {list(VECTOR_KINDS)}")
        n = len(products)
        base_parts = {
            kind: l2_normalize(np.asarray(base[kind], dtype=np.float32)) for kind in ("text", "image")
        }
        base_parts["fused"] = fuse(base_parts, BASE_FUSION_WEIGHTS)
        tuned = {kind: np.asarray(tuned[kind], dtype=np.float32) for kind in VECTOR_KINDS if kind in tuned}
        pixels = np.asarray(pixels, dtype=np.float32)
        counts = {
            f"{model} {kind}": len(v)
            for model, parts in (("tuned", tuned), ("base", base_parts))
            for kind, v in parts.items()
        }
        for name, rows in {**counts, "pixels": len(pixels)}.items():
            if rows != n:
                raise ValueError(f"{name} has {rows} rows for {n} products")
        products = products.reset_index(drop=True)
        counts = tuple(tfidf_counts(products["text"].tolist()))
        return cls(
            products, tuned, base_parts, pixels, tfidf_of_counts(counts), pixel_vectors(pixels), counts
        )


@dataclass(frozen=True)
class TaskResult:
    task: str
    status: str  # OK or INSUFFICIENT
    reason: str = ""
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    neighbours: pd.DataFrame = field(default_factory=pd.DataFrame)
    headline: dict[str, float] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    def summary(self) -> MetricSummary:
        """What ``summary.json`` holds: task, status and reason, the headline numbers, then the extras."""
        return MetricSummary.from_dict(
            {"task": self.task, "status": self.status, "reason": self.reason, **self.headline, **self.extras}
        )


def _best_row(table: pd.DataFrame, models: list[str], features: str | None = None) -> pd.Series:
    rows = table[table["model"].isin(models)]
    if features is not None:
        rows = rows[rows["features"] == features]
    return rows.loc[rows["f1"].idxmax()]


def evaluate_task(
    task_name: str, data: EvalSet, n_splits: int = 5, seed: int = 0, max_queries: int = MAX_QUERIES
) -> TaskResult:
    """Probe and neighbour tables of one task on the labelled eval products, with headline numbers.

    ``table``: ``model``, then the columns of :data:`mm_pipeline.evaluation.probes.RESULT_COLUMNS`.
    ``neighbours``: ``NEIGHBOUR_COLUMNS``, precision@k for k in ``KS`` on (at most ``max_queries``)
    labelled query products, neighbours among all labelled eval products. A task that cannot be scored
    returns status ``INSUFFICIENT`` with the reason and empty tables.
    """
    task = TASK_BY_NAME[task_name]
    prices = data.products["price"] if "price" in data.products else pd.Series(dtype=float)
    edges = price_bin_edges(prices) if (pd.to_numeric(prices, errors="coerce") > 0).any() else None
    labels = derive_labels(data.products, price_bin_edges=edges)[task_name]
    known = labels.notna().to_numpy()
    rows = np.flatnonzero(known)
    y = labels[known].astype(str).to_numpy()
    options = {
        "n_splits": n_splits,
        "seed": seed,
        "positive_label": task.positive_label,
        "groups": group_codes(data.products)[rows],  # a product's listings stay in one fold
    }
    texts = data.products["text"].to_numpy()[rows]
    counts = [m[rows] for m in data.tfidf_counts] or None
    # every fit of the task in one pool, the references' (the longest: one job per fold) first
    queue = FitQueue()
    try:
        references = reference_probes(
            texts, data.pixels[rows], y, task.kind, **options, counts=counts, queue=queue
        )
        runs = {
            "fine_tuned": cross_validate(
                {k: v[rows] for k, v in data.tuned.items()}, y, task.kind, **options, queue=queue
            ),
            # the base model is read through its fused vector only: what fine-tuning must not make worse
            "base": cross_validate(
                {"fused": data.base["fused"][rows]}, y, task.kind, pca_components=None, **options, queue=queue
            ),
            "references": references,
        }
    except InsufficientData as exc:
        return TaskResult(task_name, INSUFFICIENT, exc.reason, extras={"labelled": int(known.sum())})
    queue.run()
    model_of = {features: model for model, features in REFERENCE_FEATURES.items()}
    reference_table = runs["references"].table(seed=seed)
    table = pd.concat(
        [
            runs["fine_tuned"].table(seed=seed).assign(model="fine_tuned"),
            runs["base"].table(seed=seed).assign(model="base"),
            reference_table.assign(model=reference_table["features"].map(model_of)),
        ],
        ignore_index=True,
    )
    table = table[["model", *[c for c in table.columns if c != "model"]]]

    fused, base = _best_row(table, ["fine_tuned"], "fused"), _best_row(table, ["base"], "fused")
    reference = _best_row(table, list(REFERENCE_FEATURES))
    tuned_f1, base_f1, reference_f1 = bootstrap_f1(
        runs["fine_tuned"].prepared,
        [
            runs["fine_tuned"].predictions["fused", fused["probe"]],
            runs["base"].predictions["fused", base["probe"]],
            runs["references"].predictions[reference["features"], reference["probe"]],
        ],
        seed=seed,
    )
    headline = {
        "fused_f1": float(fused["f1"]),
        "base_fused_f1": float(base["f1"]),
        **{
            f"{model.replace('+', '_plus_')}_f1": float(_best_row(table, [model])["f1"])
            for model in REFERENCE_FEATURES
        },
        "best_reference_f1": float(reference["f1"]),
        "fused_f1_se": float(np.std(tuned_f1)),
        "fused_f1_minus_base": float(fused["f1"] - base["f1"]),
        "fused_f1_minus_base_se": float(np.std(tuned_f1 - base_f1)),
        "fused_minus_best_reference": float(fused["f1"] - reference["f1"]),
        "fused_minus_best_reference_se": float(np.std(tuned_f1 - reference_f1)),
    }
    started = time.perf_counter()
    neighbours, shares = neighbour_precision(data, rows, y, sample_queries(len(rows), max_queries, seed))
    neighbour_seconds = time.perf_counter() - started
    for model, features in (("fine_tuned", "fused"), ("tfidf", REFERENCE_FEATURES["tfidf"])):
        name = "fused" if model == "fine_tuned" else model
        value, se = precision_and_se(shares[model, features])
        headline[f"{name}_neighbour_precision_at_{HEADLINE_K}"] = value
        headline[f"{name}_neighbour_precision_at_{HEADLINE_K}_se"] = se
    gap, gap_se = precision_and_se(
        shares["fine_tuned", "fused"] - shares["tfidf", REFERENCE_FEATURES["tfidf"]]
    )
    headline[f"fused_minus_tfidf_neighbour_precision_at_{HEADLINE_K}"] = gap
    headline[f"fused_minus_tfidf_neighbour_precision_at_{HEADLINE_K}_se"] = gap_se
    extras = {
        "labelled": int(known.sum()),
        "classes": int(len(set(y))),
        "best_reference": f"{reference['model']} ({reference['features']}, {reference['probe']})",
        "neighbour_queries": int(neighbours["n"].iloc[0]),
        "neighbour_precision_chance": chance_precision(y),
        "neighbour_seconds": round(neighbour_seconds, 2),
    }
    if task_name == "sub_category":  # rare ones are scored as their category: say how many
        merged, merged_products = rare_sub_categories(data.products)
        extras["sub_categories_read_as_category"] = merged
        extras["products_in_them"] = merged_products
        extras["min_sub_category_products"] = MIN_SUB_CATEGORY_PRODUCTS
    if task_name == "price_range":
        extras["bin_edges_rub"] = [round(float(e), 2) for e in np.exp(edges)] if edges is not None else []
        target = np.asarray(log_price(data.products["price"]), dtype=float)
        for model, vectors in (("fine_tuned", data.tuned), ("base", data.base)):
            regression = regress_log_price({"fused": vectors["fused"]}, target, n_splits, seed)["fused"]
            extras[f"{model}_log_price_mse"] = regression["mse"]
            extras[f"{model}_log_price_mae"] = regression["mae"]
        extras["mean_predictor_log_price_mse"] = regression["baseline_mse"]
    return TaskResult(task_name, OK, table=table, neighbours=neighbours, headline=headline, extras=extras)


def neighbour_precision(
    data: EvalSet, rows: np.ndarray, labels: np.ndarray, queries: np.ndarray
) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    """Neighbour precision@k (k in ``KS``) of every vector set among the eval products ``rows`` (labels
    aligned with them), for the query positions ``queries`` (indices into ``rows``).

    Returns the table (``NEIGHBOUR_COLUMNS``, one row per model, features and k) and the per-query hit
    shares at ``HEADLINE_K`` per (model, features), float64 ``[len(queries)]``, for paired differences.
    """
    tfidf, pixels = REFERENCE_FEATURES["tfidf"], REFERENCE_FEATURES["pixels"]
    vector_sets = [
        *(("fine_tuned", kind, [vectors]) for kind, vectors in data.tuned.items()),
        ("base", "fused", [data.base["fused"]]),
        ("tfidf", tfidf, [data.tfidf]),
        ("pixels", pixels, [data.pixel_vectors]),
        ("tfidf+pixels", REFERENCE_FEATURES["tfidf+pixels"], [data.tfidf, data.pixel_vectors]),
    ]
    table, shares = [], {}
    for model, features, blocks in vector_sets:
        per_k = hit_shares([block[rows] for block in blocks], labels, queries, KS)
        shares[model, features] = per_k[HEADLINE_K]
        for k, hits in per_k.items():
            precision, se = precision_and_se(hits)
            table.append(
                {
                    "model": model,
                    "features": features,
                    "k": k,
                    "precision": precision,
                    "se": se,
                    "n": len(hits),
                }
            )
    return pd.DataFrame(table, columns=NEIGHBOUR_COLUMNS), shares


@dataclass(frozen=True)
class GateVerdict:
    """A metric gate's decision: passed, and the reasons it failed (or why it passed without scores)."""

    passed: bool
    reasons: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """One line for the check's ``verdict``."""
        return "; ".join(self.reasons) or "within thresholds"


NOISE_Z = 1.645  # one-sided 95%: a shortfall counts only when it exceeds sampling noise


def save_metric(
    layout: Layout,
    task_name: str,
    summary: MetricSummary,
    table: pd.DataFrame,
    neighbours: pd.DataFrame | None = None,
) -> Path:
    """A metric's summary, table and neighbour table, replaced together (empty tables are not written: a
    task without enough data has none, the duplicates metric has no neighbour table)."""
    with atomic_dir(layout.metric_dir(task_name)) as folder:
        write_json(summary.as_dict(), folder / layout.metric_summary(task_name).name)
        if not table.empty:
            write_parquet(table, folder / layout.metric_table(task_name).name)
        if neighbours is not None and not neighbours.empty:
            write_parquet(neighbours, folder / layout.metric_neighbours(task_name).name)
    return layout.metric_dir(task_name)


def judge(
    summary: MetricSummary | Mapping, min_f1: float, max_drop_vs_base: float, noise_z: float = NOISE_Z
) -> GateVerdict:
    """A gate fails when fused F1 is under its floor or the fine-tuned model trails the base by more than allowed.

    Both are judged against the sampling noise of the eval split: bootstrap standard errors of the fused F1
    (``fused_f1_se``) and of the paired fine-tuned − base difference (``fused_f1_minus_base_se``), times
    ``noise_z``, are granted on top. A small binary task whose F1 moves by a few products then does not
    block publishing, while on a large eval split the errors shrink and the thresholds become exact;
    ``noise_z=0`` makes them exact always.

    Tasks without enough labelled data pass with their reason recorded: a catalogue without, say, adult
    goods must not block publishing. ``summary`` may also be the content of a ``summary.json``.
    """
    if not isinstance(summary, MetricSummary):
        summary = MetricSummary.from_dict(summary)
    if not summary.ok:
        return GateVerdict(True, (f"{INSUFFICIENT}: {summary.reason or ''}",))
    unreadable = [
        name
        for name in ("fused_f1", "fused_f1_minus_base")
        if getattr(summary, name) is None or not math.isfinite(getattr(summary, name))
    ]
    if unreadable:  # NaN compares false with everything: it would pass every threshold
        return GateVerdict(
            False, (f"{', '.join(unreadable)} not a finite number: the metric scored nothing",)
        )
    reasons = []
    slack = noise_z * _finite_or_zero(summary.fused_f1_se)
    if summary.fused_f1 + slack < min_f1:
        reasons.append(f"fused F1 {summary.fused_f1:.3f} is below the floor {min_f1:.3f} (noise {slack:.3f})")
    drop, noise = -summary.fused_f1_minus_base, noise_z * _finite_or_zero(summary.fused_f1_minus_base_se)
    if drop > max_drop_vs_base + noise:
        reasons.append(
            f"fine-tuned fused F1 trails the base model by {drop:.3f} "
            f"(allowed {max_drop_vs_base:.3f} + noise {noise:.3f})"
        )
    return GateVerdict(not reasons, tuple(reasons))


def _finite_or_zero(se: float | None) -> float:
    """A standard error as noise allowance: none where it is missing or not finite."""
    return se if se is not None and math.isfinite(se) else 0.0
