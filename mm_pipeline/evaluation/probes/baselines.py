"""The references that learn nothing, probed on the folds of the embeddings: TF-IDF of the text, pixels.

Each is a feature set of the metric table whose ``model`` column names the reference (``REFERENCE_FEATURES``):
``tfidf`` (word and character n-grams of the cleaned text), ``pixels`` (PCA of small thumbnails) and both side
by side. :func:`reference_probes` scores them with the protocol and solvers of the embeddings' probes, so each
embedding score is read against what needs no model; the TF-IDF helpers also give the references for neighbour
search (:func:`tfidf_matrix`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

from mm_pipeline.evaluation.probes import solvers
from mm_pipeline.evaluation.probes.protocol import (
    ProbeRun,
    as_matrix,
    fold_generator,
    kept_groups,
    prepare_labels,
    stratified_folds,
)
from mm_pipeline.evaluation.probes.solvers import DEFAULT_LOGREG, DEFAULT_MLP, LogRegSettings, MLPSettings

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
# the sparse (TF-IDF) probes' L-BFGS budget: see :func:`reference_probes`
SPARSE_LOGREG = LogRegSettings(max_iter=30)


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
    sparse_logreg: LogRegSettings = SPARSE_LOGREG,
    logreg: LogRegSettings = DEFAULT_LOGREG,
    mlp: MLPSettings = DEFAULT_MLP,
    n_threads: int | None = None,
    counts: Sequence[sparse.csr_matrix] | None = None,
    groups: np.ndarray | None = None,
    queue: solvers.FitQueue | None = None,
) -> ProbeRun:
    """Out-of-fold predictions of the references that learn nothing, one per row of ``REFERENCE_ROWS``, on the
    rows, labels and folds :func:`~mm_pipeline.evaluation.probes.cross_validate` uses for the same arguments,
    so their predictions pair with the embeddings' in :func:`~mm_pipeline.evaluation.probes.bootstrap_f1`.

    * ``tfidf_text``: the two blocks of :func:`tfidf_counts`, each capped at ``max_features`` terms and
      L2-normalised (rows not standardised); logistic probe.
    * ``pixels_pca64``: ``pixels`` (float ``[n, d]``, e.g. 24x24x3 thumbnails from
      :func:`mm_pipeline.evaluation.references.pixel_features`) projected on the training fold's
      ``pixel_components`` principal axes (:func:`~mm_pipeline.evaluation.probes.fit_pca` on at most
      ``pca_max_rows`` rows), scaled by :func:`~mm_pipeline.evaluation.probes.center_and_scale`;
      logistic and MLP probes.
    * ``tfidf_text+pixels_pca64``: both side by side, the scaled components multiplied by
      1/sqrt(components) so that both blocks have rows of unit length on average; logistic probe.

    ``texts`` and ``pixels`` are aligned with ``labels``. Vocabulary, idf, principal axes and scaling
    come from each training fold only. Sparse probes stop L-BFGS after ``sparse_logreg.max_iter``
    iterations: on 30k texts with 40 classes F1 moves by < 0.002 between 20 and 100 iterations, while each
    costs a pass over ~10M nonzeros. ``seconds``: each row's fits plus its share of the fold's feature
    preparation. ``counts``: the :func:`tfidf_counts` blocks of ``texts`` (same ``char_prefix``) when the caller
    has them, e.g. rows of the counts of a superset of the texts: terms absent from a training fold are
    dropped and the others keep their order, so the features are the same as those counted here.
    ``groups`` and ``queue``: as for :func:`~mm_pipeline.evaluation.probes.cross_validate` (the same folds;
    the fits queued there instead of run, one job per fold). Raises
    :class:`~mm_pipeline.evaluation.probes.InsufficientData` when the task cannot be scored and ValueError
    when ``texts`` or ``pixels`` do not match ``labels``.
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
    codes = prepared.codes
    run = ProbeRun.start(prepared, REFERENCE_ROWS)
    sparse_fit = partial(solvers.fit_predict_logreg, settings=sparse_logreg)
    dense_fit = partial(solvers.fit_predict_logreg, settings=logreg)
    mlp_fit = partial(solvers.fit_predict_mlp, settings=mlp)
    tfidf_rows, (pixel_logreg, pixel_mlp, both_rows) = REFERENCE_ROWS[0], REFERENCE_ROWS[1:]

    def fit_fold(fold: int, fold_rows: solvers.Fold) -> None:
        train_rows, test_rows = fold_rows
        train_groups = None if groups is None else groups[train_rows]
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
        generator = fold_generator(seed, fold, PIXEL_FEATURES)
        mean, components = solvers.fit_pca(x_train, pixel_components, pca_max_rows, generator)
        image = solvers.center_and_scale((x_train - mean) @ components, (x_test - mean) @ components)
        image_seconds = time.perf_counter() - started
        started = time.perf_counter()
        # both blocks of unit length on average, like the TF-IDF rows: scaled components at full
        # scale would outweigh the text ~sqrt(components) times, and their noise would be fitted first
        both = tuple(
            sparse.hstack([t, sparse.csr_matrix(i.numpy() / np.sqrt(i.shape[1]))]).tocsr()
            for t, i in zip(text, image, strict=True)
        )
        both_seconds = time.perf_counter() - started
        sparse_logreg_fit, dense_logreg_fit = (
            partial(f, groups=train_groups) for f in (sparse_fit, dense_fit)
        )
        fits = {
            tfidf_rows: (text, text_seconds, sparse_logreg_fit),
            pixel_logreg: (image, image_seconds / 2, dense_logreg_fit),
            pixel_mlp: (image, image_seconds / 2, mlp_fit),
            both_rows: (both, both_seconds, sparse_logreg_fit),
        }
        for row, ((train, test), preparation, fit_predict) in fits.items():
            generator = fold_generator(seed, fold, *row)
            run.fit_fold(row, fit_predict, train, test, fold_rows, generator, preparation)

    groups = kept_groups(groups, prepared)
    folds = stratified_folds(codes, prepared.n_splits, seed, groups)
    # a job's peak: TF-IDF rows twice (alone and beside the pixels; 12 bytes a nonzero) and the pixel rows,
    # fold and projection
    job_bytes = 2 * 12 * sum(m.nnz for m in counts) + 3 * 4 * pixel_matrix.numel()
    jobs = [partial(fit_fold, fold, rows) for fold, rows in enumerate(folds)]
    solvers.run_or_queue(jobs, job_bytes, n_threads, queue)
    return run
