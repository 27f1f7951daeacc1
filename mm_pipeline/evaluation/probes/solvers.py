"""The numerical solvers behind the probes, and the torch helpers they share: thread control, scaling, PCA.

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
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

PARALLEL_MIN_ELEMENTS = 1 << 20  # training-matrix size from which torch uses every core


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


DEFAULT_LOGREG = LogRegSettings()
DEFAULT_MLP = MLPSettings()


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


Fold = tuple[np.ndarray, np.ndarray]  # (training rows, test rows)


def run_folds(
    work: Callable[[int, Fold], None], folds: Sequence[Fold], n_elements: int, n_threads: int | None = None
) -> None:
    """Call ``work(index, fold)`` for every fold, on the threads :func:`torch_threads` picks for
    ``n_elements``. Where that is one thread and this process has several cores, the folds run side by side,
    one per core (torch kernels release the GIL, and each fold's fits draw from their own generators, so the
    results are those of one fold after another): a small eval split's probes would otherwise leave every
    core but one idle. Exceptions of ``work`` propagate."""
    with torch_threads(n_elements, n_threads):
        workers = min(len(os.sched_getaffinity(0)), len(folds)) if n_threads is None else 1
        if torch.get_num_threads() > 1 or workers < 2:
            for index, fold in enumerate(folds):
                work(index, fold)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="probe-fold") as pool:
            for done in [pool.submit(work, index, fold) for index, fold in enumerate(folds)]:
                done.result()


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


# ---------------------------------------------------------------- solvers


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
