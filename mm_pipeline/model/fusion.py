"""Fusion weights of the product vector, chosen on the training split (never on the eval split).

The fused vector (:func:`mm_pipeline.inference.encoders.fuse`) concatenates the L2-normalized channels
(image, text, lexical) scaled by ``sqrt(weight)``, weights summing to 1, so it is unit length and its cosine
is the weighted mean of the channels' cosines. The weights are the point of a simplex grid (step
``GRID_STEP``) whose fused vectors put the most same-label products among each product's ``k`` nearest
neighbours (neighbour precision@k, averaged over the proxy tasks that have labels), measured on products the
towers were not fitted to when there are enough of them (the training holdout), else on the whole training
split. The grid holds every channel alone, so on those products the fused vector scores at least as well as
its best channel.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

GRID_STEP = 0.1
NEIGHBOURS = 5
MAX_ROWS = 2000


@dataclass(frozen=True)
class FusionChoice:
    weights: dict[str, float]
    score: float  # mean neighbour precision@k of the chosen weights on the selection rows
    channel_scores: dict[str, float]  # each channel alone
    rows: int
    tasks: list[str]

    def as_dict(self) -> dict:
        return {
            "weights": self.weights,
            "neighbour_precision": self.score,
            "channel_neighbour_precision": self.channel_scores,
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


def choose_fusion_weights(
    channels: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    k: int = NEIGHBOURS,
    seed: int = 0,
) -> FusionChoice:
    """Grid-search the fusion weights on the given (training-split) rows.

    ``channels``: name → float ``[N, d]`` vectors of the same N products (normalized here). ``labels``:
    task → length-N array of labels, missing (``None``/NaN/``pd.NA``) where unknown; tasks with fewer than two known classes are
    skipped. Without any usable label the channels are weighted equally. At most ``MAX_ROWS`` rows (a seeded
    sample) are used.
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
    if not codes:
        equal = {c: 1 / len(names) for c in names}
        return FusionChoice(equal, float("nan"), {}, len(rows), [])
    similarity = {}
    for name in names:
        unit = channels[name][rows].astype(np.float32)
        unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        similarity[name] = unit @ unit.T
    best, best_score = None, -np.inf
    for weights in simplex_grid(names):
        fused = sum(w * similarity[c] for c, w in weights.items() if w)
        score = _neighbour_hits(fused, codes, k)
        if score > best_score + 1e-9:
            best, best_score = weights, score
    alone = {c: _neighbour_hits(similarity[c], codes, k) for c in names}
    return FusionChoice(best, best_score, alone, len(rows), tasks)
