"""Duplicates proxy task: are listings of the same product (a dup group) each other's nearest neighbours?

Two views per vector kind ("image", "text", "fused", ...):

* retrieval: for every row of a group with >= 2 members, is a same-group row among its top-k neighbours
  (self excluded) over all rows, distractors included; compared with the chance level for that k.
* pair classification: candidate pairs are each row's top-k neighbours; a pair is a predicted duplicate
  when its cosine similarity is >= a threshold. Groups are split into a tune half and a score half;
  the threshold is fitted on tune-half arrays only and precision/recall/F1 are measured on the score half.
  Neighbours are searched within each half, so score-half vectors cannot influence the tune-half pairs.

Pair recall counts every same-group pair in the half (``n_positive``), so pairs missed by the
neighbour search count as misses. The standard error of pair F1 (and of the differences :func:`headline`
reports) comes from a cluster bootstrap of the score half (:func:`bootstrap_pair_f1`): its dup groups and
loose rows are resampled whole, at the fixed threshold, every kind on the same resamples.

References that learn nothing (``tfidf``, ``pixels``, ``tfidf+pixels``: dense unit rows from
:func:`mm_pipeline.evaluation.references.reference_vectors`) are scored as kinds of their own, and
:func:`headline` reads the fused vector against the best of them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mm_pipeline.evaluation.probes.protocol import product_units, resample_counts
from mm_pipeline.evaluation.references import REFERENCE_KINDS
from mm_pipeline.evaluation.similarity import build_index
from mm_pipeline.model.split import NO_GROUP  # any negative group id means "not in a dup group"

PAIRS_COLUMNS = ["kind", "nm_a", "nm_b", "score", "same_group"]
# The cosine of two float32 unit vectors carries rounding noise of ~1e-7 (the order of a sum): listings with
# the same text and photo score 0.99999994 or 1.0000001 from run to run, and a threshold fitted at such a tie
# cut between them (lamoda_hats: pair F1 1.000 in one run, 0.891 in another). Rounded, they tie.
SCORE_DECIMALS = 5
N_RESAMPLES = 200


@dataclass(frozen=True)
class Pairs:
    """Unordered candidate pairs (row_a < row_b) with their similarity and ground-truth label."""

    row_a: np.ndarray
    row_b: np.ndarray
    score: np.ndarray
    same_group: np.ndarray


@dataclass(frozen=True)
class KindMetrics:
    recall_at_k: dict[int, float]
    chance_at_k: dict[int, float]
    n_queries: int
    threshold: float
    pair_precision: float
    pair_recall: float
    pair_f1: float
    n_pairs: int
    n_positive: int
    pair_f1_se: float = math.nan  # cluster-bootstrap standard error (:func:`bootstrap_pair_f1`)


@dataclass
class DuplicateReport:
    metrics: dict[str, KindMetrics]
    pairs: pd.DataFrame  # PAIRS_COLUMNS: candidate pairs at or above each kind's threshold, all rows
    # kind → float [N_RESAMPLES] pair F1 on the score half's bootstrap resamples, the same ones for every kind
    pair_f1_resamples: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per vector kind with flat metric columns (recall@k, chance@k, threshold, pair metrics)."""
        records = []
        for kind, m in self.metrics.items():
            record: dict[str, object] = {"kind": kind, "n_queries": m.n_queries}
            record |= {f"recall@{k}": v for k, v in m.recall_at_k.items()}
            record |= {f"chance@{k}": v for k, v in m.chance_at_k.items()}
            record |= {
                "threshold": m.threshold,
                "pair_precision": m.pair_precision,
                "pair_recall": m.pair_recall,
                "pair_f1": m.pair_f1,
                "pair_f1_se": m.pair_f1_se,
                "n_pairs": m.n_pairs,
                "n_positive": m.n_positive,
            }
            records.append(record)
        return pd.DataFrame.from_records(records)


def group_sizes(groups: np.ndarray) -> np.ndarray:
    """Per row, the number of rows sharing its group id (0 for rows without a group)."""
    groups = np.asarray(groups)
    sizes = np.zeros(len(groups), dtype=np.int64)
    grouped = groups > NO_GROUP
    _, inverse, counts = np.unique(groups[grouped], return_inverse=True, return_counts=True)
    sizes[grouped] = counts[inverse]
    return sizes


def count_groups(groups: np.ndarray) -> int:
    """Groups with at least two rows: the duplicate sets a metric can score."""
    sizes = group_sizes(groups)
    return int(np.unique(np.asarray(groups)[sizes >= 2]).size)


def count_positive_pairs(groups: np.ndarray) -> int:
    """Number of unordered same-group row pairs."""
    groups = np.asarray(groups)
    _, counts = np.unique(groups[groups > NO_GROUP], return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _neighbours(
    vectors: np.ndarray, query_rows: np.ndarray, k: int, exact_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, rows) among all ``vectors`` for each query row, the query itself excluded; scores
    rounded to ``SCORE_DECIMALS``.

    Slots with no neighbour (fewer than k other rows) hold row -1 and score -inf.
    """
    index = build_index(vectors, np.arange(len(vectors), dtype=np.int64), exact_max=exact_max)
    scores, rows = index.search(vectors[query_rows], k + 1)
    keep = (rows != query_rows[:, None]) & (rows >= 0)
    # Stable sort moves the kept slots to the front in rank order; the self match (or padding) goes last.
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    rows = np.take_along_axis(rows, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    kept = np.take_along_axis(keep, order, axis=1)
    return np.round(np.where(kept, scores, -np.inf), SCORE_DECIMALS), np.where(kept, rows, -1)


def _same_group(groups: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    group_a = groups[rows_a]
    return (group_a > NO_GROUP) & (rows_b >= 0) & (group_a == groups[rows_b])


def _hit_rates(
    neighbour_rows: np.ndarray, query_rows: np.ndarray, groups: np.ndarray, ks: Sequence[int]
) -> dict[int, float]:
    same = _same_group(groups, query_rows[:, None], neighbour_rows)
    return {k: float(same[:, :k].any(axis=1).mean()) if len(query_rows) else math.nan for k in ks}


def chance_recall_at_k(groups: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Expected recall@k if neighbours were drawn uniformly at random from the other rows (analytic).

    A query in a group of size g misses with probability C(N-g, k) / C(N-1, k).
    """
    n = len(groups)
    sizes = group_sizes(groups)
    query_sizes = sizes[sizes >= 2].astype(np.float64)
    chance = {}
    for k in ks:
        miss = np.ones_like(query_sizes)
        for i in range(min(k, n - 1)):
            miss *= np.clip((n - query_sizes - i) / (n - 1 - i), 0.0, None)
        chance[k] = float((1.0 - miss).mean()) if len(query_sizes) else math.nan
    return chance


def retrieval_recall(
    vectors: np.ndarray, groups: np.ndarray, ks: Sequence[int] = (1, 5, 10), exact_max: int = 200_000
) -> dict[str, float]:
    """Recall@k of same-group rows among each grouped row's neighbours, and its chance level.

    Returns ``{"n_queries": ..., "recall@1": ..., "chance@1": ..., ...}``.
    """
    groups = np.asarray(groups)
    query_rows = np.flatnonzero(group_sizes(groups) >= 2)
    k_max = min(max(ks), len(groups) - 1)
    _, neighbour_rows = _neighbours(vectors, query_rows, k_max, exact_max)
    summary: dict[str, float] = {"n_queries": len(query_rows)}
    summary |= {f"recall@{k}": v for k, v in _hit_rates(neighbour_rows, query_rows, groups, ks).items()}
    summary |= {f"chance@{k}": v for k, v in chance_recall_at_k(groups, ks).items()}
    return summary


def split_groups(groups: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (tune_mask, score_mask) over rows: dup groups go whole to one half, other rows split by row.

    Depends only on ``groups`` and ``seed``, never on vectors.
    """
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    positive = group_sizes(groups) >= 2
    group_ids = np.unique(groups[positive])
    tune_groups = rng.permutation(group_ids)[: (len(group_ids) + 1) // 2]
    tune_mask = positive & np.isin(groups, tune_groups)
    loose_rows = rng.permutation(np.flatnonzero(~positive))
    tune_mask[loose_rows[: (len(loose_rows) + 1) // 2]] = True
    return tune_mask, ~tune_mask


def unique_pairs(
    query: np.ndarray, neighbours: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour lists as unordered pairs, each pair once: ``(a, b, score)`` with ``a < b``, sorted by (a, b).

    ``query`` holds ``Q`` ids, ``neighbours`` and ``scores`` ``[Q, k]`` ids (negative: no neighbour) and their
    similarities. A query found among its own neighbours is left out. Both directions of a pair carry the same
    cosine; the highest is kept, to be robust to rounding (and to an approximate search).
    """
    query = np.repeat(np.asarray(query), neighbours.shape[1])
    ids, scores = neighbours.ravel(), scores.ravel()
    found = (ids >= 0) & (ids != query)
    a, b, scores = np.minimum(query, ids)[found], np.maximum(query, ids)[found], scores[found]
    order = np.lexsort((-scores, b, a))
    a, b, scores = a[order], b[order], scores[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], scores[first]


def _pairs_from_neighbours(scores: np.ndarray, rows: np.ndarray, groups: np.ndarray) -> Pairs:
    """Turn per-row neighbour lists into unordered pairs, each pair once."""
    row_a, row_b, scores = unique_pairs(np.arange(len(rows)), rows, scores)
    return Pairs(row_a, row_b, scores, _same_group(groups, row_a, row_b))


def candidate_pairs(vectors: np.ndarray, groups: np.ndarray, k: int = 10, exact_max: int = 200_000) -> Pairs:
    """Each row's top-``k`` neighbours within ``vectors`` as unordered, deduplicated pairs."""
    k = min(k, len(vectors) - 1)
    if k < 1:
        no_rows = np.empty(0, dtype=np.int64)
        return Pairs(no_rows, no_rows, np.empty(0, dtype=np.float32), np.empty(0, dtype=bool))
    scores, rows = _neighbours(vectors, np.arange(len(vectors)), k, exact_max)
    return _pairs_from_neighbours(scores, rows, np.asarray(groups))


def choose_threshold(scores: np.ndarray, labels: np.ndarray, n_positive: int | None = None) -> float:
    """Similarity threshold (predict duplicate when score >= threshold) maximising F1 over these pairs.

    ``n_positive`` is the number of true pairs the recall is relative to (default: positives among the
    candidates). Returns +inf (predict nothing) when there is no positive pair.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    total_positive = int(labels.sum()) if n_positive is None else n_positive
    if total_positive < labels.sum():
        raise ValueError(f"n_positive={n_positive} is below the {labels.sum()} positive candidate pairs")
    if not labels.any():
        return math.inf
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    true_positives = np.cumsum(labels[order])
    predicted = np.arange(1, len(scores) + 1)
    f1 = 2 * true_positives / (predicted + total_positive)
    # A threshold admits all pairs tied at it, so only the last position of a tie is a valid cut.
    end_of_tie = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    return float(sorted_scores[np.argmax(np.where(end_of_tie, f1, -1.0))])


def pair_metrics(
    scores: np.ndarray, labels: np.ndarray, threshold: float, n_positive: int | None = None
) -> dict[str, float]:
    """Precision, recall and F1 of ``score >= threshold`` (recall relative to ``n_positive`` true pairs)."""
    labels = np.asarray(labels, dtype=bool)
    total_positive = int(labels.sum()) if n_positive is None else n_positive
    predicted = np.asarray(scores) >= threshold
    true_positives = int((predicted & labels).sum())
    precision = true_positives / predicted.sum() if predicted.any() else 0.0
    recall = true_positives / total_positive if total_positive else math.nan
    f1 = 2 * true_positives / (predicted.sum() + total_positive) if total_positive else math.nan
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "n_pairs": len(labels),
        "n_positive": total_positive,
    }


def _fit_threshold(tune_vectors: np.ndarray, tune_groups: np.ndarray, k: int, exact_max: int) -> float:
    """F1-optimal threshold from the tune half alone: its signature admits no score-half data."""
    pairs = candidate_pairs(tune_vectors, tune_groups, k, exact_max)
    return choose_threshold(pairs.score, pairs.same_group, count_positive_pairs(tune_groups))


def _score_half(
    score_vectors: np.ndarray, score_groups: np.ndarray, threshold: float, k: int, exact_max: int
) -> tuple[dict[str, float], Pairs]:
    pairs = candidate_pairs(score_vectors, score_groups, k, exact_max)
    return pair_metrics(pairs.score, pairs.same_group, threshold, count_positive_pairs(score_groups)), pairs


def _pairs_per_unit(pairs: Pairs, mask: np.ndarray, units: np.ndarray, n_units: int) -> np.ndarray:
    """Per unit, the pairs of ``mask`` it holds: half of each pair for each of its two rows' units."""
    ends = [np.bincount(units[rows[mask]], minlength=n_units) for rows in (pairs.row_a, pairs.row_b)]
    return 0.5 * (ends[0] + ends[1])


def bootstrap_pair_f1(
    predicted: Mapping[str, Pairs],
    groups: np.ndarray,
    thresholds: Mapping[str, float],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Pair F1 of each kind on ``n_resamples`` cluster-bootstrap resamples of the rows ``groups`` describes:
    kind → float64 ``[n_resamples]``.

    ``predicted`` holds each kind's candidate pairs over those rows, ``thresholds`` its fixed threshold. A
    resample draws the units of :func:`~mm_pipeline.evaluation.probes.protocol.product_units` with
    replacement; each unit brings, as often as it is drawn, its same-group pairs (the recall's denominator)
    and the candidate pairs its rows are in (a pair across two units half for each). Every kind is scored on
    the same draws, so the spread of a difference between kinds is its standard error (Efron & Tibshirani
    1993, ch. 6; resampling clusters whole: Davison & Hinkley 1997, sec. 3.8). NaN where a resample has no
    same-group pair, as :func:`pair_metrics` gives then.
    """
    units = product_units(groups)
    n_units = int(units.max(initial=-1)) + 1
    sizes = np.bincount(units, minlength=n_units)
    positives = (sizes * (sizes - 1) // 2).astype(np.float64)  # a loose row's unit holds none
    draws = resample_counts(n_units, n_resamples, seed)
    drawn_positives = draws @ positives
    resampled = {}
    for kind, pairs in predicted.items():
        chosen = pairs.score >= thresholds[kind]
        true_positives = _pairs_per_unit(pairs, chosen & pairs.same_group, units, n_units)
        predictions = _pairs_per_unit(pairs, chosen, units, n_units)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = 2 * (draws @ true_positives) / (draws @ predictions + drawn_positives)
        resampled[kind] = np.where(drawn_positives > 0, f1, np.nan)
    return resampled


def evaluate_duplicates(
    vectors: Mapping[str, np.ndarray],
    nm: np.ndarray,
    groups: np.ndarray,
    seed: int = 0,
    ks: Sequence[int] = (1, 5, 10),
    pair_k: int = 10,
    exact_max: int = 200_000,
) -> DuplicateReport:
    """Retrieval recall@k and tuned-threshold pair metrics for each vector kind (rows aligned with nm/groups)."""
    nm = np.asarray(nm)
    groups = np.asarray(groups)
    tune_mask, score_mask = split_groups(groups, seed)
    query_rows = np.flatnonzero(group_sizes(groups) >= 2)
    chance = chance_recall_at_k(groups, ks)
    k_max = min(max(*ks, pair_k), len(groups) - 1)
    metrics: dict[str, KindMetrics] = {}
    pair_frames = []
    thresholds, score_pairs = {}, {}
    for kind, kind_vectors in vectors.items():
        if len(kind_vectors) != len(groups):
            raise ValueError(f"{kind}: {len(kind_vectors)} vectors for {len(groups)} rows")
        threshold = _fit_threshold(kind_vectors[tune_mask], groups[tune_mask], pair_k, exact_max)
        scored, score_pairs[kind] = _score_half(
            kind_vectors[score_mask], groups[score_mask], threshold, pair_k, exact_max
        )
        thresholds[kind] = threshold

        scores, neighbour_rows = _neighbours(kind_vectors, np.arange(len(groups)), k_max, exact_max)
        metrics[kind] = KindMetrics(
            recall_at_k=_hit_rates(neighbour_rows[query_rows], query_rows, groups, ks),
            chance_at_k=chance,
            n_queries=len(query_rows),
            threshold=threshold,
            pair_precision=scored["precision"],
            pair_recall=scored["recall"],
            pair_f1=scored["f1"],
            n_pairs=int(scored["n_pairs"]),
            n_positive=int(scored["n_positive"]),
        )
        all_pairs = _pairs_from_neighbours(scores[:, :pair_k], neighbour_rows[:, :pair_k], groups)
        pair_frames.append(_pairs_frame(kind, nm, all_pairs, all_pairs.score >= threshold))
    pairs = pd.concat(pair_frames, ignore_index=True) if pair_frames else pd.DataFrame(columns=PAIRS_COLUMNS)
    resampled = bootstrap_pair_f1(score_pairs, groups[score_mask], thresholds, seed=seed)
    for kind, f1 in resampled.items():
        metrics[kind] = dataclasses.replace(metrics[kind], pair_f1_se=_spread(f1))
    return DuplicateReport(metrics=metrics, pairs=pairs, pair_f1_resamples=resampled)


def _spread(resampled: np.ndarray) -> float:
    """Standard deviation of the finite resampled values (NaN when there are none)."""
    finite = resampled[np.isfinite(resampled)]
    return float(np.std(finite)) if len(finite) else math.nan


def _pairs_frame(kind: str, nm: np.ndarray, pairs: Pairs, selected: np.ndarray) -> pd.DataFrame:
    nm_a, nm_b = nm[pairs.row_a[selected]], nm[pairs.row_b[selected]]
    frame = pd.DataFrame(
        {
            "kind": kind,
            "nm_a": np.minimum(nm_a, nm_b),
            "nm_b": np.maximum(nm_a, nm_b),
            "score": pairs.score[selected],
            "same_group": pairs.same_group[selected],
        }
    )
    return frame.sort_values("score", ascending=False, ignore_index=True)


def headline(
    table: pd.DataFrame, resampled: Mapping[str, np.ndarray] | None = None
) -> dict[str, float | str]:
    """The summary numbers of a :meth:`DuplicateReport.summary` table: pair F1 and recall@5 of ``fused`` and
    ``base_fused``, and the best reference kind (by pair F1) with ``fused_minus_best_reference``. Given the
    report's ``pair_f1_resamples``, also the bootstrap standard errors ``fused_f1_se``,
    ``fused_f1_minus_base_se`` and ``fused_minus_best_reference_se`` (of the paired differences).

    Raises ``KeyError`` when the ``fused`` or ``base_fused`` row, or every reference row, is missing.
    """
    rows = table.set_index("kind")
    fused, base = rows.loc["fused"], rows.loc["base_fused"]
    present = [kind for kind in REFERENCE_KINDS if kind in rows.index]
    if not present:
        raise KeyError(f"no reference row ({', '.join(REFERENCE_KINDS)}) in the duplicates table")
    best = rows.loc[present, "pair_f1"].fillna(0.0).idxmax()
    return {
        "fused_f1": float(fused["pair_f1"]),
        "base_fused_f1": float(base["pair_f1"]),
        "fused_f1_minus_base": float(fused["pair_f1"] - base["pair_f1"]),
        "fused_recall_at_5": float(fused["recall@5"]),
        "chance_recall_at_5": float(fused["chance@5"]),
        "threshold": float(fused["threshold"]),
        "best_reference": str(best),
        "reference_pair_f1": float(rows.loc[best, "pair_f1"]),
        "reference_recall_at_5": float(rows.loc[best, "recall@5"]),
        "fused_minus_best_reference": float(fused["pair_f1"] - rows.loc[best, "pair_f1"]),
    } | (_headline_errors(resampled, str(best)) if resampled else {})


def _headline_errors(resampled: Mapping[str, np.ndarray], best: str) -> dict[str, float]:
    fused = resampled["fused"]
    return {
        "fused_f1_se": _spread(fused),
        "fused_f1_minus_base_se": _spread(fused - resampled["base_fused"]),
        "fused_minus_best_reference_se": _spread(fused - resampled[best]),
    }
