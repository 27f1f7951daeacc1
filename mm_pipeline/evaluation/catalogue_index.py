"""The faiss index over the served catalogue's fused vectors (no Dagster here), saved with its row → nm lookup
as one set (:attr:`mm_pipeline.layout.Layout.index_dir`), and read back from one pinned version of it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mm_pipeline.evaluation.similarity import SimilarityIndex, approximate_recall_at_k, build_index
from mm_pipeline.layout import Layout
from mm_pipeline.storage import atomic_dir, pin, write_parquet


@dataclass(frozen=True)
class BuiltIndex:
    index: SimilarityIndex
    recall_at_10: float  # of the exact top-10 over the same vectors (1.0 for an exact index)


def write_index(layout: Layout, lookup: pd.DataFrame, vectors: np.ndarray, **options) -> BuiltIndex:
    """Index float32 ``[N, D]`` ``vectors`` under the ids ``lookup["nm"]`` (rows aligned) and write the index with
    ``lookup`` as the new version of ``layout.index_dir``; ``options`` go to
    :func:`mm_pipeline.evaluation.similarity.build_index` (exact_max, kind, hnsw_m, ef_search, ivf_nprobe,
    threads)."""
    index = build_index(vectors, lookup["nm"].to_numpy(), **options)
    with atomic_dir(layout.index_dir) as folder:
        index.save(folder / layout.index_file.name)
        write_parquet(lookup, folder / layout.index_lookup.name)
    return BuiltIndex(index, approximate_recall_at_k(index, vectors))


def read_index(layout: Layout) -> tuple[SimilarityIndex, pd.DataFrame]:
    """The index and its lookup (nm, title, batch, model_version per row), from one version of the set.

    Raises ``IndexFileError`` (:mod:`mm_pipeline.evaluation.similarity`) when the index file is damaged."""
    folder = pin(layout.index_dir)
    index = SimilarityIndex.load(folder / layout.index_file.name)
    return index, pd.read_parquet(folder / layout.index_lookup.name)


def read_index_lookup(layout: Layout) -> pd.DataFrame:
    """The lookup of the current index alone."""
    return pd.read_parquet(pin(layout.index_dir) / layout.index_lookup.name)


def nearest_others(
    index: SimilarityIndex, queries: np.ndarray, k: int, exclude: list[int | None]
) -> list[list[tuple[float, int]]]:
    """Per row of float32 ``[Q, D]`` ``queries``, its ``k`` nearest products (fewer in a smaller index) as
    ``(cosine, nm)``, best first, leaving out ``exclude[row]`` (the query's own nm; ``None``: none)."""
    scores, ids = index.search(queries, min(k + 1, index.n))
    return [
        [
            (float(score), int(nm))
            for score, nm in zip(row_scores, row_ids, strict=True)
            if nm >= 0 and nm != own
        ][:k]
        for row_scores, row_ids, own in zip(scores, ids, exclude, strict=True)
    ]


def example_neighbours(
    index: SimilarityIndex, lookup: pd.DataFrame, vectors: np.ndarray, queries: int = 3, k: int = 5
) -> list[dict]:
    """What the index serves, shown on a few products: for ``queries`` rows spread evenly over ``lookup``
    (aligned with float32 ``[N, D]`` ``vectors``), their ``k`` nearest other products, one record per
    neighbour: ``query`` (nm and title), ``rank``, ``nm``, ``cosine``, ``title``. ``[]`` for an empty index."""
    if not len(lookup):
        return []
    rows = np.unique(np.linspace(0, len(lookup) - 1, queries).round().astype(int))
    titles = lookup.set_index("nm")["title"].astype(str)
    query_nms = [int(nm) for nm in lookup["nm"].iloc[rows]]
    return [
        {
            "query": f"{query_nm} «{titles[query_nm]}»",
            "rank": rank,
            "nm": nm,
            "cosine": score,
            "title": titles[nm],
        }
        for query_nm, found in zip(query_nms, nearest_others(index, vectors[rows], k, query_nms), strict=True)
        for rank, (score, nm) in enumerate(found, start=1)
    ]
