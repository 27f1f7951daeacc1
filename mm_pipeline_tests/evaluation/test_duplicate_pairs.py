"""The catalogue index and the review pairs over it, which reuse the metric's pair de-duplication."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_pipeline.evaluation.catalogue_index import read_index, write_index
from mm_pipeline.evaluation.duplicate_pairs import write_review_pairs
from mm_pipeline.evaluation.duplicates import unique_pairs
from mm_pipeline.layout import Layout


def test_unique_pairs_keeps_each_pair_once_with_its_best_score():
    query = np.array([10, 11, 12])
    neighbours = np.array([[10, 11, 12], [11, 10, -1], [12, 10, 11]])
    scores = np.array([[1.0, 0.9, 0.2], [1.0, 0.8, -np.inf], [1.0, 0.3, 0.5]], dtype=np.float32)
    a, b, score = unique_pairs(query, neighbours, scores)
    assert list(zip(a.tolist(), b.tolist(), score.tolist(), strict=True)) == [
        (10, 11, np.float32(0.9)),
        (10, 12, np.float32(0.3)),
        (11, 12, np.float32(0.5)),
    ]


def test_review_pairs_are_the_index_neighbours_above_the_threshold(tmp_path):
    layout = Layout(tmp_path)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(12, 8)).astype(np.float32)
    vectors[1] = vectors[0] + 0.01  # nm 101 is a near-copy of nm 100
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    nm = np.arange(100, 112)
    lookup = pd.DataFrame({"nm": nm, "title": [f"товар {i}" for i in nm], "batch": "b0"})
    assert write_index(layout, lookup, vectors).recall_at_10 == 1.0
    index, stored = read_index(layout)
    assert index.n == 12 and stored["nm"].tolist() == nm.tolist()

    pairs = write_review_pairs(layout, lookup, vectors, k=3, threshold=0.99)
    assert pairs[["nm_a", "nm_b", "title_a", "title_b"]].values.tolist() == [
        [100, 101, "товар 100", "товар 101"]
    ]
    assert pd.read_parquet(layout.duplicate_pairs).equals(pairs)
    assert len(write_review_pairs(layout, lookup, vectors, k=3, threshold=-1.0)) <= 12 * 3
