"""Neighbour precision: exact neighbours without the query itself, dense and sparse alike."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from mm_pipeline.evaluation.neighbours import (
    chance_precision,
    hit_shares,
    nearest_neighbours,
    precision_and_se,
    sample_queries,
)


def separated_clusters(per_class: int = 15, n_classes: int = 4, dim: int = 8, seed: int = 0):
    """Tight clusters around orthogonal directions: every nearest neighbour shares the label."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    x = np.eye(dim)[labels] * 10 + rng.normal(0, 0.1, size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return x[order].astype(np.float32), labels[order]


@pytest.mark.parametrize(
    "as_blocks",
    [lambda x: [x], lambda x: [sparse.csr_matrix(x)], lambda x: [sparse.csr_matrix(x), x]],
    ids=["dense (faiss)", "sparse", "sparse+dense"],
)
def test_separated_clusters_have_precision_one(as_blocks):
    x, labels = separated_clusters()
    shares = hit_shares(as_blocks(x), labels, np.arange(len(x)))
    for k in (5, 10):
        precision, se = precision_and_se(shares[k])
        assert precision == 1.0 and se == 0.0


def test_random_vectors_score_chance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    labels = rng.choice(["a", "b", "c", "d"], size=3000, p=[0.4, 0.3, 0.2, 0.1])
    chance = chance_precision(labels)
    assert chance == pytest.approx(0.3, abs=0.02)  # 0.4^2 + 0.3^2 + 0.2^2 + 0.1^2
    shares = hit_shares([x], labels, sample_queries(len(x), 1000, seed=1))
    for k in (5, 10):
        precision, se = precision_and_se(shares[k])
        assert 0 < se < 0.02 and abs(precision - chance) < 4 * se


def test_the_query_is_never_its_own_neighbour():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(30, 6)).astype(np.float32)
    x = np.concatenate([base, base])  # every row has an exact twin
    twins = np.r_[np.arange(30, 60), np.arange(30)]
    for blocks in ([x], [sparse.csr_matrix(x)]):
        found = nearest_neighbours(blocks, np.arange(60), 3)
        assert (found != np.arange(60)[:, None]).all()
        assert np.array_equal(found[:, 0], twins)


def test_sparse_and_dense_paths_find_the_same_neighbours():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    queries = np.arange(0, 400, 7)
    dense = nearest_neighbours([x], queries, 10)
    exact = nearest_neighbours([sparse.csr_matrix(x)], queries, 10, chunk_rows=16)
    assert np.array_equal(dense, exact)
    # two blocks weigh their cosines equally, as their unit-length concatenation scaled by 1/sqrt(2)
    y = rng.normal(size=(400, 4)).astype(np.float32) * 100
    unit = np.hstack(
        [x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)]
    )
    assert np.array_equal(
        nearest_neighbours([sparse.csr_matrix(x), y], queries, 5), nearest_neighbours([unit], queries, 5)
    )


def test_bad_inputs_are_refused():
    x = np.eye(5, dtype=np.float32)
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours([x], np.arange(5), 5)
    with pytest.raises(ValueError, match="different row counts"):
        nearest_neighbours([x, x[:4]], np.arange(4), 2)


def test_queries_are_all_rows_or_a_seeded_sample():
    assert np.array_equal(sample_queries(50, 100), np.arange(50))
    sample = sample_queries(1000, 100, seed=3)
    assert len(np.unique(sample)) == 100 and np.array_equal(sample, np.sort(sample))
    assert np.array_equal(sample, sample_queries(1000, 100, seed=3))
    assert chance_precision(np.array(["a", "a", "b", "b"])) == pytest.approx(1 / 3)
