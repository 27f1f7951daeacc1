"""Fusion weights of the product vector, chosen on the training holdout (never on the eval split).

The fused vector (:func:`mm_pipeline.inference.encoders.fuse`) concatenates the L2-normalized channels
(image, text, lexical) scaled by ``sqrt(weight)``, weights summing to 1, so it is unit length and its cosine
is the weighted mean of the channels' cosines. The weights are the point of a simplex grid (step
``GRID_STEP``, every channel alone included) with the best mean of three objectives, each what a metric asset
later measures on the eval split:

* neighbour precision@k: the share of each product's ``k`` nearest products that share its label, averaged
  over the label tasks;
* probe F1 of the channels that take part, weighted equally (3-fold logistic probe at a fixed C, averaged over
  the label tasks): a weak channel adds dimensions that the probe has to learn to ignore, and lowers it;
* duplicates pair F1: rows of one product (``dup_group``, or synthetic re-listings) found at a tuned threshold.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mm_pipeline.evaluation.duplicates import evaluate_duplicates
from mm_pipeline.evaluation.probes import FitQueue, InsufficientData, LogRegSettings, ProbeRun, cross_validate
from mm_pipeline.inference.encoders import fuse, l2_normalize

GRID_STEP = 0.1
# the support probe at sklearn's fixed C: a weak channel's dimensions then cost F1, which is what the objective
# is for (a probe whose L2 strength is tuned learns to ignore them: fusion chosen with it gave flipkart1050
# duplicates pair F1 0.84, with this one 0.91)
FIXED_C = LogRegSettings(C_grid=())
NEIGHBOURS = 5
MAX_ROWS = 2000


@dataclass(frozen=True)
class FusionChoice:
    weights: dict[str, float]
    score: float  # the chosen weights' objective: the mean of the objectives above on the selection rows
    channel_scores: dict[str, float]  # each channel alone, the same objective
    rows: int
    tasks: list[str]
    support_probe_f1: dict[str, float] = field(default_factory=dict)  # "+"-joined channels → probe F1

    def as_dict(self) -> dict:
        return {
            "weights": self.weights,
            "objective": self.score,
            "channel_objective": self.channel_scores,
            "support_probe_f1": self.support_probe_f1,
            "selection_rows": self.rows,
            "label_tasks": self.tasks,
            "grid_step": GRID_STEP,
            "k": NEIGHBOURS,
        }


def simplex_grid(channels: Sequence[str], step: float = GRID_STEP) -> list[dict[str, float]]:
    """Every weight vector over ``channels`` with entries in multiples of ``step`` that sum to 1."""
    units = round(1 / step)
    grid = []
    for parts in itertools.product(range(units + 1), repeat=len(channels)):
        if sum(parts) == units:
            grid.append({c: round(p / units, 6) for c, p in zip(channels, parts, strict=True)})
    return grid


def _neighbour_hits(similarity: np.ndarray, codes: list[np.ndarray], k: int) -> float:
    """Mean over tasks of the share of each labelled row's k nearest rows that share its label.

    The neighbours are searched once among all rows; a neighbour whose label is unknown counts as a miss.
    """
    similarity = similarity.copy()
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argpartition(-similarity, k, axis=1)[:, :k]
    shares = []
    for code in codes:
        known = code >= 0
        shares.append(float((code[nearest[known]] == code[known][:, None]).mean()))
    return float(np.mean(shares))


def support_probe_f1(
    channels: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], rows: np.ndarray, seed: int = 0
) -> dict[tuple[str, ...], float]:
    """Mean logistic-probe F1 over the ``labels`` tasks (3-fold CV) of every non-empty subset of ``channels``
    (``[len(rows), d]`` each; ``labels`` over all rows, of which ``rows`` are taken); tasks too small to score
    are skipped. Empty when no task can be scored."""
    labels = {t: np.asarray(v, dtype=object)[rows] for t, v in labels.items()}
    names = list(channels)
    queue = FitQueue()  # every subset's and task's fits in one pool
    runs: dict[tuple[str, ...], list[ProbeRun]] = {}
    for size in range(1, len(names) + 1):
        for subset in itertools.combinations(names, size):
            features = np.concatenate([channels[c] for c in subset], axis=1)
            for values in labels.values():
                known = ~pd.isna(values)
                try:
                    run = cross_validate(
                        {"x": features[known]},
                        values[known].astype(str),
                        "multiclass",
                        3,
                        seed,
                        ("logreg",),
                        logreg=FIXED_C,
                        queue=queue,
                    )
                except InsufficientData:
                    continue
                runs.setdefault(subset, []).append(run)
    queue.run()
    return {
        subset: float(np.mean([run.table()["f1"].iloc[0] for run in subset_runs]))
        for subset, subset_runs in runs.items()
    }


@dataclass(frozen=True)
class DuplicateRows:
    """Rows of products that have a twin among them: channel vectors and ``dup_group``-style group ids."""

    channels: Mapping[str, np.ndarray]
    groups: np.ndarray


def duplicate_pair_f1(rows: DuplicateRows, weights: Mapping[str, float], seed: int = 0) -> float:
    """Pair F1 of the fused vectors of ``rows`` at a threshold tuned on half of the groups, as the duplicates
    metric scores it (:func:`mm_pipeline.evaluation.duplicates.evaluate_duplicates`)."""
    fused = fuse(rows.channels, {c: w for c, w in weights.items() if w})
    report = evaluate_duplicates({"fused": fused}, np.arange(len(rows.groups)), rows.groups, seed)
    return float(report.metrics["fused"].pair_f1)


def choose_fusion_weights(
    channels: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    duplicates: DuplicateRows | None = None,
    k: int = NEIGHBOURS,
    seed: int = 0,
) -> FusionChoice:
    """Choose the fusion weights on the given (training-holdout) rows: the grid point with the best mean of
    the objectives the module lists.

    ``channels``: name → float ``[N, d]`` vectors of the same N products (normalized here). ``labels``: task →
    length-N array of class labels, missing (``None``/NaN/``pd.NA``) where unknown; tasks with fewer than two
    known classes are skipped. ``duplicates``: products with twins (real ``dup_group`` rows or synthetic
    re-listings), scored by pair F1. Without any usable objective the channels are weighted equally. At most
    ``MAX_ROWS`` rows (a seeded sample) of ``channels`` are used.
    """
    names = list(channels)
    n = len(next(iter(channels.values())))
    rows = np.arange(n)
    if n > MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(n, MAX_ROWS, replace=False))
    codes, tasks = [], []
    for task, values in labels.items():
        series = np.asarray(values, dtype=object)[rows]
        known = ~pd.isna(series)
        if len(set(series[known])) < 2 or known.sum() <= k:
            continue
        code = np.full(len(rows), -1)
        code[known] = np.unique(series[known].astype(str), return_inverse=True)[1]
        codes.append(code)
        tasks.append(task)
    if not codes and duplicates is None:
        equal = {c: 1 / len(names) for c in names}
        return FusionChoice(equal, float("nan"), {}, len(rows), [])
    units, similarity = {}, {}
    for name in names:
        units[name] = l2_normalize(channels[name][rows].astype(np.float32))
        similarity[name] = units[name] @ units[name].T
    probe_f1 = support_probe_f1(units, {t: labels[t] for t in tasks}, rows, seed) if codes else {}

    def objectives(weights: dict[str, float]) -> list[float]:
        support = tuple(c for c in names if weights[c])
        scores = []
        if codes:
            scores.append(_neighbour_hits(sum(weights[c] * similarity[c] for c in support), codes, k))
        if support in probe_f1:
            scores.append(probe_f1[support])
        if duplicates is not None:
            scores.append(duplicate_pair_f1(duplicates, weights, seed))
        return scores

    scored = [(float(np.mean(objectives(w))), w) for w in simplex_grid(names)]
    best_score, best = max(scored, key=lambda item: item[0])  # first of equals: grid order
    alone = {c: float(np.mean(objectives({n: float(n == c) for n in names}))) for c in names}
    probe_summary = {"+".join(subset): f1 for subset, f1 in probe_f1.items()}
    return FusionChoice(best, best_score, alone, len(rows), tasks, probe_summary)
