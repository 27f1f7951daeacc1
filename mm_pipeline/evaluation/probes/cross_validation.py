"""The embeddings' linear and MLP probes, cross-validated fold by fold, and a ridge regression of log-price.

Rows, folds, seeds and scores follow :mod:`mm_pipeline.evaluation.probes.protocol`, whose
:class:`~mm_pipeline.evaluation.probes.protocol.ProbeRun` collects the out-of-fold predictions and builds the
result table; the probes themselves are the solvers of :mod:`mm_pipeline.evaluation.probes.solvers`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error
from sklearn.model_selection import KFold

from mm_pipeline.evaluation.probes import solvers
from mm_pipeline.evaluation.probes.protocol import (
    MIN_ROWS,
    InsufficientData,
    ProbeRun,
    as_matrix,
    fold_generator,
    kept_groups,
    prepare_labels,
    stratified_folds,
)
from mm_pipeline.evaluation.probes.solvers import DEFAULT_LOGREG, DEFAULT_MLP, LogRegSettings, MLPSettings

PCA_FUSED = "pca_fused"
PROBES = ("logreg", "mlp")


def cross_validate(
    features: Mapping[str, np.ndarray],
    labels: Sequence[str] | np.ndarray,
    kind: str,
    n_splits: int = 5,
    seed: int = 0,
    probes: Sequence[str] = PROBES,
    positive_label: str | None = None,
    pca_components: int | None = 128,
    pca_max_rows: int = 8192,
    logreg: LogRegSettings = DEFAULT_LOGREG,
    mlp: MLPSettings = DEFAULT_MLP,
    n_threads: int | None = None,
    groups: np.ndarray | None = None,
    queue: solvers.FitQueue | None = None,
) -> ProbeRun:
    """Out-of-fold predictions of each (feature set, probe).

    ``features`` maps a feature-set name to an (n, d) matrix aligned with ``labels`` (strings, no missing
    values). When ``fused`` is given and ``pca_components`` is set, ``pca_fused`` (PCA of ``fused`` fitted
    inside each training fold on at most ``pca_max_rows`` sampled rows) is evaluated right after it.
    ``n_threads``: see :func:`~mm_pipeline.evaluation.probes.solvers.run_fits` (one job per fold and feature
    set). ``groups``: dup group per row (negative: none), kept in one fold (:func:`stratified_folds`). Each
    (fold, feature set, probe) draws from its own seeded generator (:func:`fold_generator`). ``seconds`` is the
    wall time of that row's fits plus an equal share of its features' preparation in each fold. With ``queue``
    (:class:`~mm_pipeline.evaluation.probes.solvers.FitQueue`) the fits are queued there instead of run, and
    the returned run holds its predictions once the queue has run. Raises :class:`InsufficientData` when the
    task cannot be scored.
    """
    unknown = set(probes) - set(PROBES)
    if unknown:
        raise ValueError(f"unknown probes {sorted(unknown)}; choose from {PROBES}")
    prepared = prepare_labels(labels, kind, n_splits, positive_label)
    matrices = {
        name: torch.from_numpy(as_matrix(x, len(prepared.keep))[prepared.keep])
        for name, x in features.items()
    }
    feature_sets = list(matrices)
    if "fused" in matrices and pca_components and PCA_FUSED not in matrices:
        feature_sets.insert(feature_sets.index("fused") + 1, PCA_FUSED)
    fit_predict = {
        "logreg": partial(solvers.fit_predict_logreg, settings=logreg),
        "mlp": partial(solvers.fit_predict_mlp, settings=mlp),
    }
    codes = prepared.codes
    groups = kept_groups(groups, prepared)
    run = ProbeRun.start(prepared, [(s, p) for s in feature_sets for p in probes])

    def fit(fold: int, rows: solvers.Fold, name: str) -> None:
        train_idx, test_idx = (torch.from_numpy(r) for r in rows)
        started = time.perf_counter()
        if name in matrices:
            x_train, x_test = matrices[name][train_idx], matrices[name][test_idx]
        else:  # pca_fused, projected on the training fold's principal axes
            x_train, x_test = matrices["fused"][train_idx], matrices["fused"][test_idx]
            generator = fold_generator(seed, fold, name)
            mean, components = solvers.fit_pca(x_train, pca_components, pca_max_rows, generator)
            x_train, x_test = (x_train - mean) @ components, (x_test - mean) @ components
        x_train, x_test = solvers.center_and_scale(x_train, x_test)
        preparation = (time.perf_counter() - started) / len(probes)
        # the logistic probe's validation split keeps a product's listings together too
        train_groups = None if groups is None else groups[rows[0]]
        fits = {**fit_predict, "logreg": partial(fit_predict["logreg"], groups=train_groups)}
        for probe in probes:
            row = (name, probe)
            generator = fold_generator(seed, fold, *row)
            run.fit_fold(row, fits[probe], x_train, x_test, rows, generator, preparation)

    folds = stratified_folds(codes, prepared.n_splits, seed, groups)
    # a job's peak: its fold's rows of the widest feature set, then centred and scaled, and the test rows
    job_bytes = 3 * len(codes) * max(x.shape[1] for x in matrices.values()) * 4
    jobs = [partial(fit, fold, rows, name) for fold, rows in enumerate(folds) for name in feature_sets]
    solvers.run_or_queue(jobs, job_bytes, n_threads, queue)
    return run


def regress_log_price(
    features: Mapping[str, np.ndarray],
    log_price: np.ndarray,
    n_splits: int = 5,
    seed: int = 0,
    alpha: float = 1.0,
) -> dict[str, dict[str, float]]:
    """Out-of-fold ridge regression (sklearn ``Ridge(alpha)`` on features scaled by
    :func:`~mm_pipeline.evaluation.probes.solvers.center_and_scale`) of log-price.

    Rows with a non-finite target are dropped. Returns ``{feature set: {mse, mae, r2, baseline_mse, n}}``
    where ``baseline_mse`` predicts the training-fold mean (the score any useful embedding must beat).
    """
    target = np.asarray(log_price, dtype=np.float64)
    keep = np.isfinite(target)
    if keep.sum() < MIN_ROWS:
        raise InsufficientData(f"{int(keep.sum())} rows with a price, need at least {MIN_ROWS}")
    target = target[keep]
    folds = list(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(target))
    baseline = np.empty_like(target)
    for train_rows, test_rows in folds:
        baseline[test_rows] = target[train_rows].mean()
    results = {}
    for name, x in features.items():
        matrix = torch.from_numpy(np.asarray(x, dtype=np.float64)[keep])
        predicted = np.empty_like(target)
        for train_rows, test_rows in folds:
            x_train, x_test = solvers.center_and_scale(matrix[train_rows], matrix[test_rows])
            y_train = torch.from_numpy(target[train_rows])
            y_mean = y_train.mean()
            gram = x_train.T @ x_train + alpha * torch.eye(x_train.shape[1], dtype=torch.float64)
            coef = torch.linalg.solve(gram, x_train.T @ (y_train - y_mean))
            predicted[test_rows] = (x_test @ coef + y_mean).numpy()
        mse = mean_squared_error(target, predicted)
        baseline_mse = mean_squared_error(target, baseline)
        results[name] = {
            "mse": mse,
            "mae": mean_absolute_error(target, predicted),
            "r2": 1.0 - mse / baseline_mse if baseline_mse > 0 else float("nan"),
            "baseline_mse": baseline_mse,
            "n": int(keep.sum()),
        }
    return results
