"""The numerical solvers behind the probes, and the torch helpers they share: thread control, scaling, PCA.

Probes are torch (CPU, float32) re-implementations of the sklearn defaults, faster on a few cores:

* ``logreg``: sklearn ``LogisticRegression`` objective (mean log-loss + ||W||^2 / (2 C n), intercept
  unpenalised; one weight vector for binary with ``class_weight="balanced"``, multinomial softmax otherwise)
  on scaled features, C chosen per fit on a validation split of the training rows (``LogRegSettings.C_grid``;
  without a grid, sklearn's C = 1), minimised by full-batch L-BFGS in a preconditioned basis (W = L^-T V with
  L L^T ~ the loss Hessian). The basis only changes the path of the optimiser, not the optimum; 50 iterations
  reach it to ~0.001 F1.
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
import psutil
import torch
from scipy import sparse

from mm_pipeline.evaluation.probes.protocol import product_units


@dataclass(frozen=True)
class LogRegSettings:
    C: float = 1.0  # sklearn's C, used without a grid
    # inverse L2 strengths tried per fit on a validation split of the training rows (see fit_predict_logreg),
    # in units of the rows' mean squared norm: C = 1000 on centred, scaled 1024-d vectors is sklearn's C ~ 1
    C_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
    validation_fraction: float = 0.2
    # L-BFGS iterations per grid point, each warm-started from the previous one: on 3k x 1024 and TF-IDF, 8
    # choose as 15 do, at half the cost
    path_iter: int = 8
    patience: int = 2  # the path stops after this many grid points in a row without a lower validation loss
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
def torch_threads(n_threads: int | None = None) -> Iterator[None]:
    """Run torch on ``n_threads`` threads (default: every core available to this process); restores the
    previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads or len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


Fold = tuple[np.ndarray, np.ndarray]  # (training rows, test rows)


def run_fits(jobs: Sequence[Callable[[], None]], n_threads: int | None = None, job_bytes: int = 0) -> None:
    """Call every job of ``jobs``: one task's probe fits, independent of each other, each drawing from its
    own seeded generator (:func:`~mm_pipeline.evaluation.probes.protocol.fold_generator`).

    By default they run side by side, as many as there are cores, each on its share of the cores (one torch
    thread each on a machine with fewer cores than jobs): torch kernels release the GIL, and a fit's matrices
    are too small for multi-threaded kernels to keep two cores busy (10,000-product sample on 2 cores: the
    sub_category, category and price_range tables in 163 s instead of 191-194 s with fold after fold on two
    threads per kernel). ``job_bytes``, the memory one job holds at its peak, caps how many run at once to
    what the memory available now (``psutil``) holds; 0: no cap. The results are those of the jobs run one
    after another on one thread. With ``n_threads`` they run one after another on that many threads instead:
    pass 1 where probes run beside other work, whose busy cores make every multi-threaded kernel wait for a
    descheduled thread. Exceptions of a job propagate."""
    cores = len(os.sched_getaffinity(0))
    workers = 1
    if n_threads is None:
        room = psutil.virtual_memory().available // job_bytes if job_bytes else len(jobs)
        workers = max(1, min(cores, len(jobs), room))
    with torch_threads(n_threads or max(1, cores // workers)):
        if workers < 2:
            for job in jobs:
                job()
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="probe-fit") as pool:
            for done in [pool.submit(job) for job in jobs]:
                done.result()


class FitQueue:
    """Probe fits gathered from several cross-validations of one task (the embeddings', the base model's, the
    references'), run together by :meth:`run`: one pool keeps every core busy to the last fit, where each
    group run on its own leaves a core idle while its last fold finishes (five fold jobs on two cores run
    as three rounds; 10,000-product sample on 2 cores: sub_category, category, price_range and gender in
    171-172 s instead of 186-189 s, the same predictions). Jobs run in the order they were added: add the
    largest first. The runs that added jobs hold their predictions only after :meth:`run`."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []
        self.job_bytes = 0

    def add(self, jobs: Sequence[Callable[[], None]], job_bytes: int) -> None:
        """Queue ``jobs``, each holding at most ``job_bytes`` at its peak (see :func:`run_fits`)."""
        self.jobs.extend(jobs)
        self.job_bytes = max(self.job_bytes, job_bytes)

    def run(self, n_threads: int | None = None) -> None:
        """:func:`run_fits` of every queued job, which are then dropped."""
        jobs, self.jobs = self.jobs, []
        run_fits(jobs, n_threads, self.job_bytes)


def run_or_queue(
    jobs: Sequence[Callable[[], None]], job_bytes: int, n_threads: int | None, queue: FitQueue | None
) -> None:
    """:func:`run_fits` of ``jobs`` now or, with ``queue``, added to it to run later."""
    if queue is None:
        run_fits(jobs, n_threads, job_bytes)
    else:
        queue.add(jobs, job_bytes)


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


class _Design:
    """A logistic probe's training matrix (dense torch or scipy CSR) as the solver uses it: products with X and
    X^T, and the preconditioner of the loss Hessian bound for any L2 penalty.

    Dense X gets a Cholesky preconditioner (the Gram matrix of at most ``preconditioner_rows`` sampled rows),
    sparse X (TF-IDF) a diagonal one. X^T G is computed as (G^T X)^T for dense X and as a product with a
    stored CSR copy of X^T for sparse X, both several times faster than the X^T G autograd would run."""

    def __init__(
        self, x: torch.Tensor | sparse.csr_matrix, curvature: float, rows: int, generator: torch.Generator
    ):
        self.n = x.shape[0]
        self.curvature = curvature  # bound of the log-loss Hessian per unit of X^T X / n
        if sparse.issparse(x):
            self.rows, self.columns = _torch_csr(x), _torch_csr(x.T.tocsr())
            self.column_scale = torch.from_numpy(np.asarray(x.multiply(x).sum(0)).ravel() / self.n).float()
            self.gram = None
        else:
            self.rows = self.columns = None
            self.dense = x
            sample = _sample_rows(x, rows, generator)
            self.gram = (sample.T @ sample) / len(sample)
            self.column_scale = x.square().mean(0)

    @property
    def mean_squared_norm(self) -> float:
        """The rows' mean squared L2 norm (the trace of X^T X / n): the scale a relative C is measured in."""
        return float(self.column_scale.sum()) or 1.0

    def times_x(self, w: torch.Tensor) -> torch.Tensor:
        return self.dense @ w if self.gram is not None else self.rows @ w

    def x_transpose_times(self, g: torch.Tensor) -> torch.Tensor:
        return (g.T @ self.dense).T if self.gram is not None else self.columns @ g

    def basis(self, penalty: float) -> tuple[Callable, Callable, Callable]:
        """``(weights_of, gradient_of_v, v_of)``: W = P V with P P^T ~ the inverse Hessian bound at
        ``penalty``, the gradient in V, and V for given W (a warm start)."""
        if self.gram is None:
            inverse_sqrt = (self.curvature * self.column_scale + penalty).rsqrt().unsqueeze(1)
            return (lambda v: v * inverse_sqrt), (lambda g: g * inverse_sqrt), (lambda w: w / inverse_sqrt)
        d = self.gram.shape[0]
        factor = torch.linalg.cholesky(self.curvature * self.gram + penalty * torch.eye(d))  # W = L^-T V
        return (
            lambda v: torch.linalg.solve_triangular(factor.T, v, upper=True),
            lambda g: torch.linalg.solve_triangular(factor, g, upper=False),
            lambda w: factor.T @ w,
        )


def _fit_logreg(
    design: _Design,
    target: torch.Tensor,
    row_weight: torch.Tensor | None,
    penalty: float,
    start: tuple[torch.Tensor, torch.Tensor],
    max_iter: int,
    settings: LogRegSettings,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean (weighted) log-loss + ``penalty`` ||W||^2 / 2 by L-BFGS from ``start`` = (W, b):
    the fitted (W, b). ``target``: one column of 0/1 (sigmoid) or one-hot rows (softmax)."""
    weights_of, gradient_of_v, v_of = design.basis(penalty)
    binary = target.shape[1] == 1
    v, b = v_of(start[0]).clone(), start[1].clone()
    v.grad, b.grad = torch.zeros_like(v), torch.zeros_like(b)
    optimizer = torch.optim.LBFGS(
        [v, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=settings.tol,
        tolerance_change=1e-9,
        history_size=settings.history,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        w = weights_of(v)
        logits = design.times_x(w) + b
        if binary:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=row_weight)
            residual = (torch.sigmoid(logits) - target) * row_weight
        else:
            loss = torch.nn.functional.cross_entropy(logits, target)
            residual = torch.softmax(logits, 1) - target
        residual /= design.n
        v.grad.copy_(gradient_of_v(design.x_transpose_times(residual) + penalty * w))
        b.grad.copy_(residual.sum(0))
        return loss + 0.5 * penalty * w.square().sum()

    optimizer.step(closure)
    return weights_of(v).detach(), b.detach()


def _targets(y: torch.Tensor, n_classes: int, balanced: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(target, row_weight)`` of labels ``y``: a 0/1 column and per-row weights (inverse class frequency
    when ``balanced``) for two classes, one-hot rows and no weights otherwise."""
    if n_classes != 2:
        return torch.nn.functional.one_hot(y, n_classes).float(), None
    counts = torch.bincount(y, minlength=2).float().clamp(min=1)
    weight = (len(y) / (2 * counts))[y].unsqueeze(1) if balanced else torch.ones(len(y), 1)
    return y.float().unsqueeze(1), weight


def _validation_split(
    y: torch.Tensor, fraction: float, generator: torch.Generator, groups: np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fit rows, validation rows)``: ``fraction`` of each class's products drawn for validation, at least
    one of every class with two or more and never a class's last. A product is a row, or with ``groups`` (dup
    group per row, negative: none) all the rows of its group
    (:func:`~mm_pipeline.evaluation.probes.protocol.product_units`), so a listing's twin is never fitted on
    while the listing is validated; it counts in the class of its first row."""
    labels = y.numpy()
    units = np.arange(len(labels)) if groups is None else product_units(groups)
    unit_ids, first_row = np.unique(units, return_index=True)
    unit_labels = labels[first_row]
    held_out_units = []
    for label in np.unique(unit_labels):
        mine = unit_ids[unit_labels == label]
        take = min(len(mine) - 1, max(1, round(fraction * len(mine))))
        held_out_units.append(mine[torch.randperm(len(mine), generator=generator).numpy()[:take]])
    held_out = np.isin(units, np.concatenate(held_out_units))
    return torch.from_numpy(np.flatnonzero(~held_out)), torch.from_numpy(np.flatnonzero(held_out))


def _validation_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None
) -> tuple[float, float]:
    """``(-accuracy, log-loss)`` of ``logits`` for ``target`` as :func:`_targets` makes them (both weighted
    by ``weight``: balanced accuracy for a balanced binary task), ordered as a validation loss: accuracy
    first, as the probe is scored by what it predicts, the log-loss to break its ties."""
    if target.shape[1] == 1:
        weight = torch.ones_like(target) if weight is None else weight
        hits = ((logits > 0).float() == target).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=weight)
        return -float((hits * weight).sum() / weight.sum()), float(loss)
    accuracy = (logits.argmax(1) == target.argmax(1)).float().mean()
    return -float(accuracy), float(torch.nn.functional.cross_entropy(logits, target))


def _rows(x: torch.Tensor | sparse.csr_matrix, index: torch.Tensor) -> torch.Tensor | sparse.csr_matrix:
    return x[index.numpy()] if sparse.issparse(x) else x[index]


def _as_torch(x: torch.Tensor | sparse.csr_matrix) -> torch.Tensor:
    """``x`` as a torch tensor that multiplies a weight matrix: dense as it is, CSR as a torch CSR tensor."""
    return _torch_csr(x) if sparse.issparse(x) else x


def _choose_C(
    x_train: torch.Tensor | sparse.csr_matrix,
    y_train: torch.Tensor,
    split: tuple[torch.Tensor, torch.Tensor],
    n_classes: int,
    settings: LogRegSettings,
    generator: torch.Generator,
) -> tuple[float, tuple[torch.Tensor, torch.Tensor]]:
    """The regularisation path of :func:`fit_predict_logreg` on ``split`` = (fit rows, validation rows) of the
    training rows: ``(relative C, (W, b))`` of the grid point with the least validation loss."""
    fit_rows, validation_rows = split
    curvature = 0.25 if n_classes == 2 else 0.5
    design = _Design(_rows(x_train, fit_rows), curvature, settings.preconditioner_rows, generator)
    target, weight = _targets(y_train[fit_rows], n_classes, settings.balanced_binary)
    x_validation = _as_torch(_rows(x_train, validation_rows))
    validation_target, validation_weight = _targets(
        y_train[validation_rows], n_classes, settings.balanced_binary
    )
    start = (torch.zeros(x_train.shape[1], target.shape[1]), torch.zeros(target.shape[1]))
    inf = (float("inf"), float("inf"))
    best, rises, previous = (inf, settings.C_grid[0], start), 0, inf
    for relative in sorted(settings.C_grid):
        if rises == settings.patience:
            break
        penalty = design.mean_squared_norm / (relative * design.n)
        start = _fit_logreg(design, target, weight, penalty, start, settings.path_iter, settings)
        loss = _validation_loss(x_validation @ start[0] + start[1], validation_target, validation_weight)
        rises, previous = (rises + 1 if loss >= previous else 0), loss
        if loss < best[0]:
            best = (loss, relative, start)
    return best[1], best[2]


def fit_predict_logreg(
    x_train: torch.Tensor | sparse.csr_matrix,
    y_train: torch.Tensor,
    x_test: torch.Tensor | sparse.csr_matrix,
    n_classes: int,
    settings: LogRegSettings,
    generator: torch.Generator,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """sklearn LogisticRegression objective minimised by L-BFGS; returns class indices for ``x_test``.

    With ``settings.C_grid`` the inverse L2 strength is chosen per fit, as the linear probes of CLIP (Radford
    et al. 2021) and Kornblith et al. 2019 choose it: each C of the grid (relative to the rows' mean squared
    norm) is fitted on ``1 - validation_fraction`` of the training rows (``groups``, a dup group per row,
    keeps a product's listings on one side), strongest penalty first, each fit warm-started from the previous one
    (``path_iter`` iterations) until the validation loss (:func:`_validation_loss`: accuracy, ties broken by
    log-loss) has risen ``patience`` times in a row; the C with the least validation loss is refitted on every
    training row from that fit. Without a grid, or where no class has two products to split, ``settings.C``
    is sklearn's C. Binary tasks use balanced class weights unless ``settings.balanced_binary`` is off (see
    there).
    """
    binary = n_classes == 2  # one logit and a sigmoid, as sklearn
    design = _Design(x_train, 0.25 if binary else 0.5, settings.preconditioner_rows, generator)
    target, row_weight = _targets(y_train, n_classes, settings.balanced_binary)
    penalty = 1 / (settings.C * design.n)
    start = (torch.zeros(x_train.shape[1], target.shape[1]), torch.zeros(target.shape[1]))
    if settings.C_grid:
        split = _validation_split(y_train, settings.validation_fraction, generator, groups)
        if len(split[1]):
            relative, start = _choose_C(x_train, y_train, split, n_classes, settings, generator)
            penalty = design.mean_squared_norm / (relative * design.n)
    w, b = _fit_logreg(design, target, row_weight, penalty, start, settings.max_iter, settings)
    return _decide(_as_torch(x_test) @ w + b, binary)


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
