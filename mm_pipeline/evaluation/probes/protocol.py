"""The scoring protocol of every probe: which rows and classes count, the folds, the scores and their noise.

A :class:`ProbeRun` holds one task's out-of-fold predictions of every (feature set, probe), the embeddings'
(:mod:`~mm_pipeline.evaluation.probes.cross_validation`) or the baselines'
(:mod:`~mm_pipeline.evaluation.probes.baselines`), and builds the result table (``RESULT_COLUMNS``): the one
place a result row is made.

Protocol (one code path for every task):

* Rows are split with ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)``, or where the rows
  carry dup groups with ``StratifiedGroupKFold``, so that a product's listings fall in one fold
  (:func:`stratified_folds`). Every fitted transform (scaling, PCA for ``pca_fused``, TF-IDF vocabulary) and
  every logistic probe's L2 strength (chosen on a validation split of the training fold,
  :func:`~mm_pipeline.evaluation.probes.solvers.fit_predict_logreg`) come from the training fold only.
* Dense features are centred and divided by one factor
  (:func:`~mm_pipeline.evaluation.probes.solvers.center_and_scale`), not scaled per dimension: a
  probe reads the vector's geometry as a cosine search does (the fused vector's channel weights, the LSA
  channel's singular values), as the linear probes of MTEB (Muennighoff et al. 2023; logistic regression on
  the raw embeddings) and CLIP (Radford et al. 2021) do. Per-dimension scaling gives a weak channel's or a
  trailing component's noise the weight of the strongest direction.
* Out-of-fold predictions are pooled over all folds and scored once, so every labelled row is predicted
  exactly once by a model that never saw it. ``f1_se`` is the standard deviation of that score over
  bootstrap resamples of the rows (:func:`bootstrap_f1`): the sampling noise of the eval split.
* Binary tasks report ``average="binary"`` for the positive label (given, else the minority class);
  multiclass tasks report ``average="weighted"``; both also report macro-F1.
* Classes with fewer than ``n_splits`` members cannot appear in every fold: in a task with more than two
  classes they are merged into ``"other"`` (rows dropped if ``"other"`` is still too small); when the
  smallest remaining class is still smaller than ``n_splits`` (binary tasks), ``n_splits`` is reduced to it.
* Fewer than ``MIN_ROWS`` usable rows, fewer than two classes or a class with a single member raise
  :class:`InsufficientData`; the caller reports the task as "insufficient data" instead of a score.
"""

from __future__ import annotations

import functools
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

MIN_ROWS = 20
OTHER_CLASS = "other"
RESULT_COLUMNS = [
    "features",
    "probe",
    "f1",
    "f1_se",
    "precision",
    "recall",
    "macro_f1",
    "n",
    "n_classes",
    "n_splits",
    "seconds",
]


class InsufficientData(ValueError):
    """Too few labelled rows or classes to score a task; ``reason`` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreparedLabels:
    keep: np.ndarray  # boolean mask over the input rows
    codes: np.ndarray  # int64 class index per kept row
    classes: np.ndarray  # class names, index = code
    n_splits: int
    positive: int | None  # positive class index for binary tasks


def prepare_labels(
    labels: Sequence[str] | np.ndarray, kind: str, n_splits: int, positive_label: str | None = None
) -> PreparedLabels:
    """Apply the rare-class rule, pick the fold count and encode labels; raise InsufficientData if hopeless."""
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"kind must be 'binary' or 'multiclass', got {kind!r}")
    values = np.asarray(labels).astype(str)
    if len(values) < MIN_ROWS:
        raise InsufficientData(f"{len(values)} labelled rows, need at least {MIN_ROWS}")
    names, counts = np.unique(values, return_counts=True)
    if kind == "binary" and len(names) > 2:
        raise ValueError(f"binary task has {len(names)} classes: {list(names)[:5]}")
    keep = np.ones(len(values), bool)
    rare = names[counts < n_splits]
    if len(names) > 2 and len(rare):
        values = np.where(np.isin(values, rare), OTHER_CLASS, values)
        merged = values == OTHER_CLASS
        if merged.sum() < n_splits:
            keep = ~merged
    names, codes = np.unique(values[keep], return_inverse=True)
    counts = np.bincount(codes)
    if len(names) < 2:
        raise InsufficientData(f"only one class ({names[0] if len(names) else 'none'}) among labelled rows")
    if counts.min() < 2:
        raise InsufficientData(f"class {names[counts.argmin()]!r} has a single labelled row")
    if keep.sum() < MIN_ROWS:
        raise InsufficientData(f"{int(keep.sum())} usable rows, need at least {MIN_ROWS}")
    positive = None
    if kind == "binary":
        if positive_label is None:
            positive = int(np.argmin(counts))
        elif positive_label in names:
            positive = int(np.flatnonzero(names == positive_label)[0])
        else:
            raise InsufficientData(f"positive label {positive_label!r} absent")
    return PreparedLabels(keep, codes.astype(np.int64), names, min(n_splits, int(counts.min())), positive)


def as_matrix(x: np.ndarray, n_rows: int) -> np.ndarray:
    """``x`` as a float32 ``[n_rows, d]`` array; raises ValueError for any other shape."""
    matrix = np.asarray(x, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) != n_rows:
        raise ValueError(f"feature matrix of shape {matrix.shape} does not match {n_rows} labels")
    return matrix


def product_units(groups: np.ndarray) -> np.ndarray:
    """Per row, the id (0..units-1) of its product: its dup group (``groups``: int per row, negative: none)
    when the group has two or more rows, else the row alone. What a fold, a validation split or a cluster
    bootstrap keeps whole."""
    groups = np.asarray(groups)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    grouped = (groups >= 0) & (counts[inverse] >= 2)
    keys = np.where(grouped, groups, groups.max(initial=0) + 1 + np.arange(len(groups)))
    return np.unique(keys, return_inverse=True)[1]


def kept_groups(groups: np.ndarray | None, prepared: PreparedLabels) -> np.ndarray | None:
    """``groups`` (int per input row) of the rows :func:`prepare_labels` kept; ValueError for another length."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if len(groups) != len(prepared.keep):
        raise ValueError(f"{len(groups)} groups do not match {len(prepared.keep)} labels")
    return groups[prepared.keep]


def stratified_folds(
    codes: np.ndarray, n_splits: int, seed: int, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(training rows, test rows)`` of each fold: ``StratifiedKFold``, or with ``groups`` (int per row, a
    dup group; negative: none) where some group has two or more rows, ``StratifiedGroupKFold``, so that the
    listings of one product are never split between a probe's training and test rows (a probe would score
    its memory of the product). Falls back to ``StratifiedKFold`` when a class spans fewer groups than
    folds.

    The folds of the last few inputs are kept (each caller gets copies): a task's embedding, base-model and
    reference probes ask for the same ones, and ``StratifiedGroupKFold`` takes ~0.4 s on 3,000 rows. Raises
    TypeError for ``codes`` that are not integers."""
    codes = np.asarray(codes)
    if not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"class codes must be integers, got {codes.dtype}")
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    groups_key = None if groups is None else np.ascontiguousarray(groups, dtype=np.int64).tobytes()
    folds = _cached_folds(codes.tobytes(), groups_key, n_splits, seed)
    return [(train.copy(), test.copy()) for train, test in folds]


@functools.lru_cache(maxsize=8)
def _cached_folds(
    codes_key: bytes, groups_key: bytes | None, n_splits: int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    codes = np.frombuffer(codes_key, dtype=np.int64)
    units = None if groups_key is None else product_units(np.frombuffer(groups_key, dtype=np.int64))
    if units is not None and _units_fill_folds(codes, units, n_splits):
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = splitter.split(np.zeros(len(codes)), codes, units)
    else:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = splitter.split(np.zeros(len(codes)), codes)
    return tuple((train, test) for train, test in folds)


def _units_fill_folds(codes: np.ndarray, units: np.ndarray, n_splits: int) -> bool:
    """Whether some product (:func:`product_units`) holds two or more rows and every class spans at least
    ``n_splits`` products."""
    if units.max(initial=-1) + 1 == len(units):
        return False
    return all(len(np.unique(units[codes == code])) >= n_splits for code in np.unique(codes))


def score_predictions(codes: np.ndarray, predicted: np.ndarray, prepared: PreparedLabels) -> dict[str, float]:
    if prepared.positive is None:
        average, pos_label = "weighted", 1
    else:
        average, pos_label = "binary", prepared.positive
    precision, recall, f1, _ = precision_recall_fscore_support(
        codes, predicted, average=average, pos_label=pos_label, zero_division=0
    )
    macro = f1_score(codes, predicted, average="macro", zero_division=0)
    return {"f1": f1, "precision": precision, "recall": recall, "macro_f1": macro}


def resample_counts(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """How often each of ``n`` units is drawn in each of ``n_resamples`` bootstrap resamples (n draws with
    replacement, seeded): float64 ``[n_resamples, n]``, so a resampled sum is ``counts @ per_unit``."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_resamples)]).astype(
        np.float64
    )


def bootstrap_f1(
    prepared: PreparedLabels, predictions: Sequence[np.ndarray], n_resamples: int = 200, seed: int = 0
) -> np.ndarray:
    """F1 (the task's averaging) of each prediction vector on ``n_resamples`` row resamples, shape
    ``[len(predictions), n_resamples]``. Every vector is scored on the same resamples, so differences
    between rows of the result are paired."""
    codes = prepared.codes
    n_classes = len(prepared.classes)
    weights = resample_counts(len(codes), n_resamples, seed)
    truth = np.eye(n_classes)[codes]  # [n, classes]
    support = weights @ truth
    scores = []
    for predicted in predictions:
        guessed = np.eye(n_classes)[predicted]
        hits = weights @ (truth * guessed)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = np.nan_to_num(2 * hits / (support + weights @ guessed))
        if prepared.positive is not None:
            scores.append(per_class[:, prepared.positive])
        else:
            scores.append((per_class * support).sum(1) / support.sum(1))
    return np.stack(scores)


@dataclass
class ProbeRun:
    """Out-of-fold predictions of every (feature set, probe) on one task, and their fit times."""

    prepared: PreparedLabels
    predictions: dict[tuple[str, str], np.ndarray]
    seconds: dict[tuple[str, str], float]
    # fits may run side by side (:func:`~mm_pipeline.evaluation.probes.solvers.run_fits`)
    _seconds_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def start(cls, prepared: PreparedLabels, rows: Iterable[tuple[str, str]]) -> ProbeRun:
        """A run of ``rows`` (feature set, probe), in table order, with nothing predicted yet."""
        rows = list(rows)
        n = len(prepared.codes)
        return cls(prepared, {row: np.empty(n, np.int64) for row in rows}, dict.fromkeys(rows, 0.0))

    def fit_fold(
        self,
        row: tuple[str, str],
        fit_predict: Callable[..., np.ndarray],
        x_train: torch.Tensor | sparse.csr_matrix,
        x_test: torch.Tensor | sparse.csr_matrix,
        fold: tuple[np.ndarray, np.ndarray],
        generator: torch.Generator,
        preparation: float,
    ) -> None:
        """Fit ``row``'s probe (a solver of :mod:`~mm_pipeline.evaluation.probes.solvers`, settings bound) on
        the features of one fold's (training rows, test rows), keep its predictions of the test rows and add
        the fit's wall time plus ``preparation`` (the row's share of the fold's feature preparation) to the
        row's ``seconds``."""
        train_rows, test_rows = fold
        started = time.perf_counter()
        self.predictions[row][test_rows] = fit_predict(
            x_train,
            torch.from_numpy(self.prepared.codes[train_rows]),
            x_test,
            len(self.prepared.classes),
            generator=generator,
        )
        with self._seconds_lock:
            self.seconds[row] += time.perf_counter() - started + preparation

    def table(self, n_resamples: int = 200, seed: int = 0) -> pd.DataFrame:
        """One row per (feature set, probe), columns ``RESULT_COLUMNS``; ``f1_se`` from ``n_resamples``
        bootstrap resamples of the rows (the same resamples for every row: see :func:`bootstrap_f1`)."""
        codes = self.prepared.codes
        resampled = bootstrap_f1(self.prepared, list(self.predictions.values()), n_resamples, seed)
        rows = [
            {
                "features": name,
                "probe": probe,
                **score_predictions(codes, predicted, self.prepared),
                "f1_se": float(np.std(scores)),
                "n": len(codes),
                "n_classes": len(self.prepared.classes),
                "n_splits": self.prepared.n_splits,
                "seconds": self.seconds[name, probe],
            }
            for ((name, probe), predicted), scores in zip(self.predictions.items(), resampled, strict=True)
        ]
        return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def fold_generator(seed: int, fold: int, *names: str) -> torch.Generator:
    """The random generator of one fold's fit named ``names`` (a feature set, a probe): seeded by all three,
    so a row does not depend on which other feature sets or probes are evaluated."""
    key = zlib.crc32("/".join(names).encode())
    return torch.Generator().manual_seed(seed * 1_000_003 + fold * 7919 + key)
