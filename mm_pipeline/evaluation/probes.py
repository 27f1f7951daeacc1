"""Linear and MLP probes over embeddings, scored with stratified cross-validation.

Protocol (one code path for every task):

* Rows are split with ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)``. Every fitted transform
  (scaling, PCA for ``pca_fused``, TF-IDF vocabulary) is fitted on the training fold only.
* Dense features are centred and divided by one factor (:func:`center_and_scale`), not scaled per dimension: a
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

Probes are torch (CPU, float32) re-implementations of the sklearn defaults, faster on a few cores:

* ``logreg``: sklearn ``LogisticRegression(C=1.0)`` objective (mean log-loss + ||W||^2 / (2 C n), intercept
  unpenalised; one weight vector for binary with ``class_weight="balanced"``, multinomial softmax otherwise)
  on scaled features,
  minimised by full-batch L-BFGS in a preconditioned basis (W = L^-T V with L L^T ~ the loss Hessian). The
  basis only changes the path of the optimiser, not the optimum; 50 iterations reach it to ~0.001 F1.
* ``mlp``: sklearn ``MLPClassifier`` defaults (100 ReLU units, Adam lr 1e-3, batches of 200, alpha 1e-4,
  Glorot init) trained for a fixed budget (>= 600 steps and >= 5 epochs, <= 200 epochs) instead of sklearn's
  "until the training loss stalls" loop, which runs tens of epochs at 24k rows. Where that long run
  overfits (40 classes on 24k rows: 114 epochs) sklearn scores lower than ours; elsewhere F1 agrees to ~0.01.
"""

from __future__ import annotations

import math
import os
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.metrics import f1_score, mean_absolute_error, mean_squared_error, precision_recall_fscore_support
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import normalize

PCA_FUSED = "pca_fused"
FEATURE_SETS = ("text", "image", "fused", PCA_FUSED)
PROBES = ("logreg", "mlp")
MIN_ROWS = 20
PARALLEL_MIN_ELEMENTS = 1 << 20  # training-matrix size from which torch uses every core
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
class LogRegSettings:
    C: float = 1.0
    max_iter: int = 50  # preconditioned: on 24k x 1024, 40 classes, F1 is within 0.001 of the optimum
    tol: float = 1e-4
    history: int = 30  # L-BFGS memory (sklearn/scipy: 10); cheap at d x classes parameters
    preconditioner_rows: int = 4096  # rows sampled to estimate X^T X for the preconditioner
    # Binary tasks weight classes inversely to their frequency (sklearn ``class_weight="balanced"``): with a
    # 5% positive class and C=1, unweighted logits rarely cross 0 even on separable data, and positive-class
    # F1 then measures the threshold, not the features.
    balanced_binary: bool = True


@dataclass(frozen=True)
class MLPSettings:
    hidden: int = 100
    alpha: float = 1e-4
    lr: float = 1e-3
    batch_size: int = 200
    min_steps: int = 600  # optimiser steps; epochs = ceil(min_steps / batches per epoch) ...
    min_epochs: int = 5  # ... at least this many ...
    max_epochs: int = 200  # ... and at most sklearn's max_iter


@dataclass(frozen=True)
class PreparedLabels:
    keep: np.ndarray  # boolean mask over the input rows
    codes: np.ndarray  # int64 class index per kept row
    classes: np.ndarray  # class names, index = code
    n_splits: int
    positive: int | None  # positive class index for binary tasks


# ---------------------------------------------------------------- labels and folds


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


def stratified_folds(codes: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(codes)), codes))


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


def bootstrap_f1(
    prepared: PreparedLabels, predictions: Sequence[np.ndarray], n_resamples: int = 200, seed: int = 0
) -> np.ndarray:
    """F1 (the task's averaging) of each prediction vector on ``n_resamples`` row resamples, shape
    ``[len(predictions), n_resamples]``. Every vector is scored on the same resamples, so differences
    between rows of the result are paired."""
    codes, n = prepared.codes, len(prepared.codes)
    n_classes = len(prepared.classes)
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_resamples)]).astype(
        np.float64
    )
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


# ---------------------------------------------------------------- torch helpers


@contextmanager
def torch_threads(n_elements: int, n_threads: int | None = None) -> Iterator[None]:
    """Run torch on ``n_threads`` threads, by default on every core available to this process for large
    inputs and on one for small ones (where synchronisation costs more than it saves); restores the previous
    setting. On a machine busy with other work, more threads than free cores make every small kernel wait for
    a descheduled thread: pass ``n_threads=1`` when probes run beside other jobs (3-20x faster there)."""
    previous = torch.get_num_threads()
    if n_threads is None:
        n_threads = len(os.sched_getaffinity(0)) if n_elements >= PARALLEL_MIN_ELEMENTS else 1
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def center_and_scale(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre on the training fold's mean and divide by one factor, the root of its mean per-dimension
    variance, so the average dimension has unit variance (as after sklearn's StandardScaler) while the
    vector's geometry is kept: the relative scale of its dimensions, e.g. the fusion weights of the fused
    vector or the singular values of the LSA channel, is what a cosine search sees, and scaling every
    dimension to unit variance would inflate the noise of the low-variance ones. A constant matrix is only
    centred."""
    mean = train.mean(0)
    scale = (train - mean).square().mean().sqrt()
    scale = scale if scale > 1e-12 else torch.ones_like(scale)
    return (train - mean) / scale, (test - mean) / scale


def fit_pca(
    train: torch.Tensor,
    n_components: int,
    max_rows: int,
    generator: torch.Generator,
    power_iterations: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top principal axes of the training rows (at most ``max_rows`` sampled): returns (mean, components d×k).

    Randomised subspace iteration on the covariance, as sklearn's PCA does for large inputs: a few products
    with a d×(k+16) block instead of a full eigendecomposition.
    """
    sample = _sample_rows(train, max_rows, generator)
    mean = sample.mean(0)
    centred = sample - mean
    covariance = (centred.T @ centred).double() / len(sample)
    d = covariance.shape[0]
    k = min(n_components, d)
    basis = torch.linalg.qr(torch.randn(d, min(d, k + 16), generator=generator, dtype=torch.float64)).Q
    for _ in range(power_iterations):
        basis = torch.linalg.qr(covariance @ basis).Q
    _, vectors = torch.linalg.eigh(basis.T @ covariance @ basis)  # ascending eigenvalues
    components = basis @ vectors.flip(1)[:, :k]
    return mean, components.float()


def _sample_rows(x: torch.Tensor, max_rows: int, generator: torch.Generator) -> torch.Tensor:
    if len(x) <= max_rows:
        return x
    return x[torch.randperm(len(x), generator=generator)[:max_rows]]


def fit_predict_logreg(
    x_train: torch.Tensor | sparse.csr_matrix,
    y_train: torch.Tensor,
    x_test: torch.Tensor | sparse.csr_matrix,
    n_classes: int,
    settings: LogRegSettings,
    generator: torch.Generator,
) -> np.ndarray:
    """sklearn LogisticRegression(C) objective minimised by L-BFGS; returns class indices for ``x_test``.

    Binary tasks use balanced class weights unless ``settings.balanced_binary`` is off (see there).

    Dense X gets a Cholesky preconditioner of the Hessian bound, sparse X (TF-IDF) a diagonal one. Gradients
    are written out: X^T G as (G^T X)^T for dense X and as a product with a stored CSR copy of X^T for
    sparse X, both several times faster than the X^T G autograd would run.
    """
    n, d = x_train.shape
    binary = n_classes == 2  # one logit and a sigmoid, as sklearn
    penalty = 1.0 / (settings.C * n)  # mean-loss scaling, as sklearn's lbfgs solver
    curvature = 0.25 if binary else 0.5  # bound of the log-loss Hessian per unit of X^T X / n
    if sparse.issparse(x_train):
        x_rows, x_columns = _torch_csr(x_train), _torch_csr(x_train.T.tocsr())
        column_scale = torch.from_numpy(np.asarray(x_train.multiply(x_train).sum(0)).ravel() / n).float()
        inverse_sqrt = (curvature * column_scale + penalty).rsqrt().unsqueeze(1)

        def times_x(w: torch.Tensor) -> torch.Tensor:
            return x_rows @ w

        def x_transpose_times(g: torch.Tensor) -> torch.Tensor:
            return x_columns @ g

        def weights_of(v: torch.Tensor) -> torch.Tensor:
            return v * inverse_sqrt

        def gradient_of_v(grad_w: torch.Tensor) -> torch.Tensor:
            return grad_w * inverse_sqrt

        x_test = _torch_csr(x_test)
    else:
        sample = _sample_rows(x_train, settings.preconditioner_rows, generator)
        hessian_bound = curvature * (sample.T @ sample) / len(sample) + penalty * torch.eye(d)
        factor = torch.linalg.cholesky(hessian_bound)  # W = L^-T V: the Hessian in V is close to I

        def times_x(w: torch.Tensor) -> torch.Tensor:
            return x_train @ w

        def x_transpose_times(g: torch.Tensor) -> torch.Tensor:
            return (g.T @ x_train).T

        def weights_of(v: torch.Tensor) -> torch.Tensor:
            return torch.linalg.solve_triangular(factor.T, v, upper=True)

        def gradient_of_v(grad_w: torch.Tensor) -> torch.Tensor:
            return torch.linalg.solve_triangular(factor, grad_w, upper=False)

    if binary:
        target = y_train.float().unsqueeze(1)
        counts = torch.bincount(y_train, minlength=2).float()
        row_weight = (
            (n / (2 * counts))[y_train].unsqueeze(1) if settings.balanced_binary else torch.ones(n, 1)
        )
    else:
        target = torch.nn.functional.one_hot(y_train, n_classes).float()
    v = torch.zeros(d, target.shape[1])
    b = torch.zeros(target.shape[1])
    v.grad, b.grad = torch.zeros_like(v), torch.zeros_like(b)
    optimizer = torch.optim.LBFGS(
        [v, b],
        lr=1.0,
        max_iter=settings.max_iter,
        tolerance_grad=settings.tol,
        tolerance_change=1e-9,
        history_size=settings.history,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        w = weights_of(v)
        logits = times_x(w) + b
        if binary:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=row_weight)
            residual = (torch.sigmoid(logits) - target) * row_weight
        else:
            loss = torch.nn.functional.cross_entropy(logits, target)
            residual = torch.softmax(logits, 1) - target
        residual /= n
        v.grad.copy_(gradient_of_v(x_transpose_times(residual) + penalty * w))
        b.grad.copy_(residual.sum(0))
        return loss + 0.5 * penalty * w.square().sum()

    optimizer.step(closure)
    return _decide(x_test @ weights_of(v) + b, binary)


def fit_predict_mlp(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    n_classes: int,
    settings: MLPSettings,
    generator: torch.Generator,
) -> np.ndarray:
    """One hidden ReLU layer, Adam, sklearn-style Glorot init and L2; returns class indices for ``x_test``.

    Backward pass and Adam are written out over one flat parameter buffer: a few kernels per step instead of
    autograd's and the optimizer's per-tensor bookkeeping, which dominates on small batches.
    """
    n, d = x_train.shape
    binary = n_classes == 2  # one logit and a sigmoid, as sklearn
    outputs = 1 if binary else n_classes
    shapes = [(d, settings.hidden), (settings.hidden,), (settings.hidden, outputs), (outputs,)]
    params = torch.empty(sum(math.prod(shape) for shape in shapes))
    grads, first_moment, second_moment = (torch.zeros_like(params) for _ in range(3))
    w1, b1, w2, b2 = _views(params, shapes)
    g_w1, g_b1, g_w2, g_b2 = _views(grads, shapes)
    for weight, bias, factor in ((w1, b1, 6.0), (w2, b2, 2.0 if binary else 6.0)):
        bound = math.sqrt(factor / (weight.shape[0] + weight.shape[1]))  # sklearn's init
        weight.uniform_(-bound, bound, generator=generator)
        bias.uniform_(-bound, bound, generator=generator)
    batch = min(settings.batch_size, n)
    batches_per_epoch = math.ceil(n / batch)
    epochs = min(
        settings.max_epochs, max(settings.min_epochs, math.ceil(settings.min_steps / batches_per_epoch))
    )
    target = (
        y_train.float().unsqueeze(1) if binary else torch.nn.functional.one_hot(y_train, n_classes).float()
    )
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            x, size = x_train[rows], len(rows)
            hidden_pre = torch.addmm(b1, x, w1)
            hidden = torch.relu(hidden_pre)
            logits = torch.addmm(b2, hidden, w2)
            probabilities = torch.sigmoid(logits) if binary else torch.softmax(logits, 1)
            d_logits = probabilities.sub_(target[rows]).div_(size)  # d(mean log-loss)/d(logits)
            torch.mm(hidden.T, d_logits, out=g_w2)
            torch.sum(d_logits, 0, out=g_b2)
            d_hidden = (d_logits @ w2.T).mul_(hidden_pre > 0)
            torch.mm(x.T, d_hidden, out=g_w1)
            torch.sum(d_hidden, 0, out=g_b1)
            # sklearn's penalty alpha/2 ||W||^2 per batch mean (weights only)
            g_w1.add_(w1, alpha=settings.alpha / size)
            g_w2.add_(w2, alpha=settings.alpha / size)
            step += 1
            first_moment.mul_(beta1).add_(grads, alpha=1 - beta1)
            second_moment.mul_(beta2).addcmul_(grads, grads, value=1 - beta2)
            denominator = (second_moment / (1 - beta2**step)).sqrt_().add_(eps)
            params.addcdiv_(first_moment, denominator, value=-settings.lr / (1 - beta1**step))
    logits = torch.addmm(b2, torch.relu(torch.addmm(b1, x_test, w1)), w2)
    return _decide(logits, binary)


def _views(flat: torch.Tensor, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    views, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        views.append(flat[offset : offset + size].view(shape))
        offset += size
    return views


def _decide(logits: torch.Tensor, binary: bool) -> np.ndarray:
    if binary:
        return (logits[:, 0] > 0).long().numpy()
    return logits.argmax(1).numpy()


# ---------------------------------------------------------------- evaluation entry points


@dataclass
class ProbeRun:
    """Out-of-fold predictions of every (feature set, probe) on one task, and their fit times."""

    prepared: PreparedLabels
    predictions: dict[tuple[str, str], np.ndarray]
    seconds: dict[tuple[str, str], float]

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


def evaluate_probes(*args, **kwargs) -> pd.DataFrame:
    """Cross-validated probe scores, one row per (feature set, probe), columns ``RESULT_COLUMNS``; the
    arguments are those of :func:`cross_validate`."""
    return cross_validate(*args, **kwargs).table()


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
    logreg: LogRegSettings = LogRegSettings(),
    mlp: MLPSettings = MLPSettings(),
    n_threads: int | None = None,
) -> ProbeRun:
    """Out-of-fold predictions of each (feature set, probe).

    ``features`` maps a feature-set name to an (n, d) matrix aligned with ``labels`` (strings, no missing
    values). When ``fused`` is given and ``pca_components`` is set, ``pca_fused`` (PCA of ``fused`` fitted
    inside each training fold on at most ``pca_max_rows`` sampled rows) is evaluated right after it.
    ``n_threads``: see :func:`torch_threads`. Each (fold, feature set, probe) draws from its own seeded
    generator, so a row does not depend on which other feature sets or probes are evaluated. ``seconds`` is
    the wall time of that row's fits plus an equal share of the fold's feature preparation. Raises
    :class:`InsufficientData` when the task cannot be scored.
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
        "logreg": partial(fit_predict_logreg, settings=logreg),
        "mlp": partial(fit_predict_mlp, settings=mlp),
    }
    codes = prepared.codes
    n_classes = len(prepared.classes)
    predictions = {(s, p): np.empty(len(codes), np.int64) for s in feature_sets for p in probes}
    seconds = dict.fromkeys(predictions, 0.0)
    labels_tensor = torch.from_numpy(codes)
    with torch_threads(len(codes) * max(x.shape[1] for x in matrices.values()), n_threads):
        for fold, (train_rows, test_rows) in enumerate(stratified_folds(codes, prepared.n_splits, seed)):
            train_idx, test_idx = torch.from_numpy(train_rows), torch.from_numpy(test_rows)
            for name in feature_sets:
                started = time.perf_counter()
                if name in matrices:
                    x_train, x_test = matrices[name][train_idx], matrices[name][test_idx]
                else:  # pca_fused, projected on the training fold's principal axes
                    x_train, x_test = matrices["fused"][train_idx], matrices["fused"][test_idx]
                    generator = _generator(seed, fold, name)
                    mean, components = fit_pca(x_train, pca_components, pca_max_rows, generator)
                    x_train, x_test = (x_train - mean) @ components, (x_test - mean) @ components
                x_train, x_test = center_and_scale(x_train, x_test)
                preparation = (time.perf_counter() - started) / len(probes)
                for probe in probes:
                    started = time.perf_counter()
                    predictions[name, probe][test_rows] = fit_predict[probe](
                        x_train,
                        labels_tensor[train_idx],
                        x_test,
                        n_classes,
                        generator=_generator(seed, fold, name, probe),
                    )
                    seconds[name, probe] += time.perf_counter() - started + preparation
    return ProbeRun(prepared, predictions, seconds)


def _generator(seed: int, fold: int, *names: str) -> torch.Generator:
    key = zlib.crc32("/".join(names).encode())
    return torch.Generator().manual_seed(seed * 1_000_003 + fold * 7919 + key)


def as_matrix(x: np.ndarray, n_rows: int) -> np.ndarray:
    """``x`` as a float32 ``[n_rows, d]`` array; raises ValueError for any other shape."""
    matrix = np.asarray(x, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) != n_rows:
        raise ValueError(f"feature matrix of shape {matrix.shape} does not match {n_rows} labels")
    return matrix


def regress_log_price(
    features: Mapping[str, np.ndarray],
    log_price: np.ndarray,
    n_splits: int = 5,
    seed: int = 0,
    alpha: float = 1.0,
) -> dict[str, dict[str, float]]:
    """Out-of-fold ridge regression (sklearn ``Ridge(alpha)`` on features scaled by :func:`center_and_scale`) of
    log-price.

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
            x_train, x_test = center_and_scale(matrix[train_rows], matrix[test_rows])
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


# ---------------------------------------------------------------- references that learn nothing

TFIDF_FEATURES = "tfidf_text"
PIXEL_FEATURES = "pixels_pca64"
# reference model (the metric table's ``model`` column) -> its feature set
REFERENCE_FEATURES = {
    "tfidf": TFIDF_FEATURES,
    "pixels": PIXEL_FEATURES,
    "tfidf+pixels": f"{TFIDF_FEATURES}+{PIXEL_FEATURES}",
}
REFERENCE_ROWS = (
    (TFIDF_FEATURES, "logreg"),
    (PIXEL_FEATURES, "logreg"),
    (PIXEL_FEATURES, "mlp"),
    (REFERENCE_FEATURES["tfidf+pixels"], "logreg"),
)


def tfidf_counts(texts: Sequence[str], char_prefix: int = 200) -> list[sparse.csr_matrix]:
    """Term counts of the two TF-IDF blocks, each int64 CSR ``[len(texts), terms]``: word 1-2-grams of each
    text and char_wb 3-5-grams of its first ``char_prefix`` characters (title and brand open the composed
    text; char n-grams of whole descriptions would multiply the cost several times). Texts are tokenised
    once; which terms are kept and their idf come from the rows a model is fitted on (:func:`fit_tfidf`)."""
    documents = [str(text) for text in texts]
    return [
        CountVectorizer(ngram_range=(1, 2)).fit_transform(documents),
        CountVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform(
            [d[:char_prefix] for d in documents]
        ),
    ]


def fit_tfidf(
    counts: sparse.csr_matrix, train_rows: np.ndarray, max_features: int
) -> Callable[[sparse.csr_matrix], sparse.csr_matrix]:
    """Sublinear TF-IDF over the ``max_features`` terms most frequent in ``counts[train_rows]``, idf from those
    rows only, as a TfidfVectorizer fitted there would give. Returns the transform: counts of any rows (the
    columns of ``counts``) -> float64 CSR with L2-normalised rows."""
    train = counts[train_rows]
    frequency = np.asarray(train.sum(0)).ravel()
    present = np.flatnonzero(frequency)
    # most frequent first: their weight rows stay in cache during X @ W
    columns = present[np.argsort(-frequency[present], kind="stable")[:max_features]]
    transformer = TfidfTransformer(sublinear_tf=True).fit(train[:, columns])
    return lambda rows: transformer.transform(rows[:, columns])


def tfidf_matrix(
    texts: Sequence[str], max_features: int = 50_000, char_prefix: int = 200
) -> sparse.csr_matrix:
    """The TF-IDF reference of ``texts``, fitted on all of them: float32 CSR ``[len(texts), terms]``, both
    blocks of :func:`tfidf_counts` side by side, rows scaled to unit length (inner product = cosine)."""
    return tfidf_of_counts(tfidf_counts(texts, char_prefix), max_features)


def tfidf_of_counts(counts: Sequence[sparse.csr_matrix], max_features: int = 50_000) -> sparse.csr_matrix:
    """:func:`tfidf_matrix` from the blocks of :func:`tfidf_counts` already counted."""
    blocks = [fit_tfidf(m, np.arange(m.shape[0]), max_features)(m) for m in counts]
    return normalize(sparse.hstack(blocks).tocsr()).astype(np.float32)


def reference_probes(
    texts: Sequence[str],
    pixels: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    kind: str,
    n_splits: int = 5,
    seed: int = 0,
    positive_label: str | None = None,
    max_features: int = 50_000,
    char_prefix: int = 200,
    pixel_components: int = 64,
    pca_max_rows: int = 8192,
    sparse_logreg: LogRegSettings = LogRegSettings(max_iter=30),
    logreg: LogRegSettings = LogRegSettings(),
    mlp: MLPSettings = MLPSettings(),
    n_threads: int | None = None,
    counts: Sequence[sparse.csr_matrix] | None = None,
) -> ProbeRun:
    """Out-of-fold predictions of the references that learn nothing, one per row of ``REFERENCE_ROWS``, on the
    rows, labels and folds :func:`cross_validate` uses for the same arguments, so their predictions pair
    with the embeddings' in :func:`bootstrap_f1`.

    * ``tfidf_text``: the two blocks of :func:`tfidf_counts`, each capped at ``max_features`` terms and
      L2-normalised (rows not standardised); logistic probe.
    * ``pixels_pca64``: ``pixels`` (float ``[n, d]``, e.g. 24x24x3 thumbnails from
      :func:`mm_pipeline.evaluation.references.pixel_features`) projected on the training fold's
      ``pixel_components`` principal axes (:func:`fit_pca` on at most ``pca_max_rows`` rows), scaled by
      :func:`center_and_scale`;
      logistic and MLP probes.
    * ``tfidf_text+pixels_pca64``: both side by side, the scaled components multiplied by
      1/sqrt(components) so that both blocks have rows of unit length on average; logistic probe.

    ``texts`` and ``pixels`` are aligned with ``labels``. Vocabulary, idf, principal axes and scaling
    come from each training fold only. Sparse probes stop L-BFGS after ``sparse_logreg.max_iter``
    iterations: on 30k texts with 40 classes F1 moves by < 0.002 between 20 and 100 iterations, while each
    costs a pass over ~10M nonzeros. ``seconds``: each row's fits plus its share of the fold's feature
    preparation. ``counts``: the :func:`tfidf_counts` blocks of ``texts`` (same ``char_prefix``) when the caller
    has them, e.g. rows of the counts of a superset of the texts: terms absent from a training fold are
    dropped and the others keep their order, so the features are the same as those counted here. Raises
    :class:`InsufficientData` when the task cannot be scored and ValueError when ``texts`` or ``pixels`` do not
    match ``labels``.
    """
    prepared = prepare_labels(labels, kind, n_splits, positive_label)
    keep = prepared.keep
    if len(texts) != len(keep):
        raise ValueError(f"{len(texts)} texts do not match {len(keep)} labels")
    if counts is None:
        counts = tfidf_counts(np.asarray(texts, dtype=object)[keep], char_prefix)
    else:
        if any(m.shape[0] != len(keep) for m in counts):
            raise ValueError(f"counts of {[m.shape[0] for m in counts]} rows do not match {len(keep)} labels")
        counts = [m[np.flatnonzero(keep)] for m in counts]
    pixel_matrix = torch.from_numpy(as_matrix(pixels, len(keep))[keep])
    codes, n_classes = prepared.codes, len(prepared.classes)
    labels_tensor = torch.from_numpy(codes)
    predictions = {row: np.empty(len(codes), np.int64) for row in REFERENCE_ROWS}
    seconds = dict.fromkeys(REFERENCE_ROWS, 0.0)
    tfidf_rows, (pixel_logreg, pixel_mlp, both_rows) = REFERENCE_ROWS[0], REFERENCE_ROWS[1:]
    elements = max(sum(m.nnz for m in counts), len(codes) * pixel_components)  # what the probes see
    with torch_threads(elements, n_threads):
        for fold, (train_rows, test_rows) in enumerate(stratified_folds(codes, prepared.n_splits, seed)):
            started = time.perf_counter()
            vectorizers = [fit_tfidf(m, train_rows, max_features) for m in counts]
            text = tuple(
                sparse.hstack(
                    [vectorize(m[rows]) for vectorize, m in zip(vectorizers, counts, strict=True)]
                ).tocsr()
                for rows in (train_rows, test_rows)
            )
            text_seconds = time.perf_counter() - started
            started = time.perf_counter()
            x_train, x_test = pixel_matrix[train_rows], pixel_matrix[test_rows]
            generator = _generator(seed, fold, PIXEL_FEATURES)
            mean, components = fit_pca(x_train, pixel_components, pca_max_rows, generator)
            image = center_and_scale((x_train - mean) @ components, (x_test - mean) @ components)
            image_seconds = time.perf_counter() - started
            started = time.perf_counter()
            # both blocks of unit length on average, like the TF-IDF rows: scaled components at full
            # scale would outweigh the text ~sqrt(components) times, and their noise would be fitted first
            both = tuple(
                sparse.hstack([t, sparse.csr_matrix(i.numpy() / np.sqrt(i.shape[1]))]).tocsr()
                for t, i in zip(text, image, strict=True)
            )
            both_seconds = time.perf_counter() - started
            fits = {
                tfidf_rows: (text, text_seconds, partial(fit_predict_logreg, settings=sparse_logreg)),
                pixel_logreg: (image, image_seconds / 2, partial(fit_predict_logreg, settings=logreg)),
                pixel_mlp: (image, image_seconds / 2, partial(fit_predict_mlp, settings=mlp)),
                both_rows: (both, both_seconds, partial(fit_predict_logreg, settings=sparse_logreg)),
            }
            for row, ((train, test), preparation, fit_predict) in fits.items():
                started = time.perf_counter()
                predictions[row][test_rows] = fit_predict(
                    train, labels_tensor[train_rows], test, n_classes, generator=_generator(seed, fold, *row)
                )
                seconds[row] += time.perf_counter() - started + preparation
    return ProbeRun(prepared, predictions, seconds)


def _torch_csr(matrix: sparse.csr_matrix) -> torch.Tensor:
    matrix = matrix.astype(np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
            check_invariants=False,  # built from a valid scipy CSR matrix
        )
