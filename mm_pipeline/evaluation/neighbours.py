"""Neighbour precision: how many of a product's nearest neighbours share its label.

This is what ``mm-pipeline similar`` and the similarity index give a user, and no probe can hide a badly
shaped space: a linear probe finds a category direction even where the nearest products are all the same
colour. For each query product, the share of its k nearest other products (cosine, exact search) whose
label equals its own; precision@k is the mean over queries and its standard error the standard deviation
of the per-query shares (ddof 1) over sqrt(queries).

Vectors are given as blocks of aligned rows; each block is L2-normalised and the similarity of two products
is the mean of their blocks' cosines (the cosine of the blocks concatenated with weight 1/sqrt(blocks)).
All-dense blocks are searched with a faiss ``IndexFlatIP``; when a block is sparse (TF-IDF) the similarities
are computed exactly in chunks of queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
from scipy import sparse
from sklearn.preprocessing import normalize

from mm_pipeline.inference.encoders import l2_normalize

Block = np.ndarray | sparse.csr_matrix
KS = (5, 10)
MAX_QUERIES = 2000


def sample_queries(n: int, max_queries: int = MAX_QUERIES, seed: int = 0) -> np.ndarray:
    """Sorted int64 row indices of the query products: all ``n`` rows, or ``max_queries`` of them drawn
    without replacement with ``seed``."""
    if n <= max_queries:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, max_queries, replace=False)).astype(np.int64)


def nearest_neighbours(
    blocks: Sequence[Block], queries: np.ndarray, k: int, chunk_rows: int = 512
) -> np.ndarray:
    """int64 ``[len(queries), k]``: for each query row, the rows of its ``k`` most similar other rows, most
    similar first (ties in any order). The query itself is never its own neighbour.

    ``blocks``: row-aligned float ``[n, d_i]`` arrays or CSR matrices (see the module docstring for the
    similarity). Raises ValueError when the blocks are not row-aligned or ``k`` >= n.
    """
    n = blocks[0].shape[0]
    if any(block.shape[0] != n for block in blocks):
        raise ValueError(f"blocks have different row counts: {[block.shape[0] for block in blocks]}")
    if not 0 < k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} rows, got {k}")
    queries = np.asarray(queries, dtype=np.int64)
    scale = 1.0 / np.sqrt(len(blocks))
    if not any(sparse.issparse(block) for block in blocks):
        x = np.hstack([l2_normalize(np.asarray(block, dtype=np.float32)) * scale for block in blocks]).astype(
            np.float32
        )
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        _, found = index.search(x[queries], k + 1)
        others = found != queries[:, None]
        others &= np.cumsum(others, axis=1) <= k  # drop self, or the last one where self was not found
        return found[others].reshape(len(queries), k).astype(np.int64)
    units = [
        _unit_sparse(block) if sparse.issparse(block) else l2_normalize(np.asarray(block, dtype=np.float32))
        for block in blocks
    ]
    transposed = [unit.T.tocsr() if sparse.issparse(unit) else unit.T for unit in units]
    found = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), chunk_rows):
        chunk = queries[start : start + chunk_rows]
        similarity = np.zeros((len(chunk), n), np.float32)
        for unit, unit_t in zip(units, transposed, strict=True):
            product = unit[chunk] @ unit_t
            similarity += product.toarray() if sparse.issparse(product) else product
        similarity[np.arange(len(chunk)), chunk] = -np.inf
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1, kind="stable")
        found[start : start + len(chunk)] = np.take_along_axis(top, order, axis=1)
    return found


def hit_shares(
    blocks: Sequence[Block], labels: np.ndarray, queries: np.ndarray, ks: Sequence[int] = KS
) -> dict[int, np.ndarray]:
    """Per k: float64 ``[len(queries)]``, the share of each query's k nearest other rows whose label equals
    its own (``labels``: ``[n]``, any comparable dtype, aligned with the blocks' rows). One search at the
    largest k serves every k. Raises ValueError as :func:`nearest_neighbours`."""
    labels = np.asarray(labels)
    found = nearest_neighbours(blocks, queries, max(ks))
    same = labels[found] == labels[np.asarray(queries)][:, None]
    return {k: same[:, :k].mean(1) for k in ks}


def precision_and_se(shares: np.ndarray) -> tuple[float, float]:
    """Mean of per-query hit shares (or of their paired differences) and its standard error."""
    se = float(np.std(shares, ddof=1) / np.sqrt(len(shares))) if len(shares) > 1 else float("nan")
    return float(np.mean(shares)), se


def chance_precision(labels: np.ndarray) -> float:
    """Expected precision@k of neighbours drawn at random from the other rows: the probability that two
    distinct rows share a label, sum over labels of c (c - 1) / (n (n - 1))."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    n = counts.sum()
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def _unit_sparse(block: sparse.csr_matrix) -> sparse.csr_matrix:
    return normalize(sparse.csr_matrix(block, dtype=np.float32))
