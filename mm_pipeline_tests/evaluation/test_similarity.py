import numpy as np
import pytest

from mm_pipeline.evaluation.similarity import (
    SimilarityIndex,
    approximate_recall_at_k,
    build_index,
    default_ivf_nlist,
)


def clustered_unit_vectors(n: int, dim: int, n_clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    vectors = centres[rng.integers(n_clusters, size=n)] + 0.3 * rng.standard_normal(
        (n, dim), dtype=np.float32
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def clustered() -> np.ndarray:
    return clustered_unit_vectors(20_000, 64, n_clusters=200)


@pytest.fixture(scope="module")
def nm_ids(clustered) -> np.ndarray:
    return 10**10 + np.random.default_rng(1).permutation(len(clustered)).astype(np.int64) * 7


def test_index_kind_switches_at_exact_max():
    vectors = clustered_unit_vectors(1_000, 16, n_clusters=10)
    ids = np.arange(len(vectors), dtype=np.int64)
    assert build_index(vectors, ids, exact_max=1_000).kind == "flat"
    assert build_index(vectors, ids, exact_max=999, kind="hnsw").kind == "hnsw"
    assert build_index(vectors, ids, exact_max=999, kind="ivf").kind == "ivf"


def test_default_ivf_nlist():
    assert default_ivf_nlist(1_000_000) == 4_000
    assert default_ivf_nlist(1_000) == 25  # capped so each list gets enough training points


def test_search_returns_nm_ids(clustered, nm_ids):
    index = build_index(clustered, nm_ids)
    scores, found = index.search(clustered[:50], k=3)
    np.testing.assert_array_equal(found[:, 0], nm_ids[:50])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert set(found.ravel()) <= set(nm_ids)


def test_flat_recall_is_exact(clustered, nm_ids):
    assert approximate_recall_at_k(build_index(clustered, nm_ids), clustered) == 1.0


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_is_high_on_clustered_data(clustered, nm_ids, kind):
    index = build_index(clustered, nm_ids, exact_max=0, kind=kind)
    assert approximate_recall_at_k(index, clustered, k=10, n_queries=500) > 0.9


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_save_load_round_trip(tmp_path, clustered, nm_ids, kind):
    index = build_index(clustered, nm_ids, exact_max=0, kind=kind, ef_search=40, ivf_nprobe=4)
    path = index.save(tmp_path / "index.faiss")
    loaded = SimilarityIndex.load(path)

    assert (loaded.kind, loaded.n, loaded.dim, loaded.params) == (
        index.kind,
        index.n,
        index.dim,
        index.params,
    )
    assert loaded.build_seconds == pytest.approx(index.build_seconds)
    queries = clustered[::97]
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.faiss",
        "index.faiss.json",
    ]  # no temp files left
