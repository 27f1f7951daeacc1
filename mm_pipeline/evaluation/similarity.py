"""Nearest-neighbour search over L2-normalised embeddings (inner product = cosine), keyed by nm id.

Small collections get an exact ``IndexFlatIP``; above ``exact_max`` rows an approximate index (IVF-Flat by
default, or HNSW). Every index is wrapped in ``IndexIDMap2`` so searches return nm ids, not row positions.

Defaults come from ``benchmarks/bench_index.py`` at 1M x 1024 on 2 (shared) cores: IVF-Flat with
nlist = 4 sqrt(n) = 4000 and nprobe = 16 reached recall@10 1.00 at 12-16x the exact queries/s (build ~8 min
on a loaded machine, dominated by k-means and list assignment). HNSW was dropped as the default because its
build does not fit: M=16, efConstruction=40 took ~15 min and gave recall@10 0.80 at efSearch=128; the
M=32, efConstruction=80 defaults kept for ``kind="hnsw"`` build ~4x slower still.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from mm_pipeline.storage import atomic_path, write_json

IndexKind = Literal["flat", "hnsw", "ivf"]
ApproximateKind = Literal["hnsw", "ivf"]

DEFAULT_KIND: ApproximateKind = "ivf"
IVF_TRAIN_POINTS_PER_LIST = 40  # faiss warns below 39 points per centroid
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
REBUILD_HINT = (
    "rebuild it by materializing the similarity_index asset "
    "(dagster asset materialize -m mm_pipeline.definitions --select similarity_index)"
)


class IndexFileError(ValueError):
    """A similarity index that cannot be served, in one line: the file, the problem, how to rebuild it.

    Raised for a missing or unreadable metadata file, an empty or truncated index file, a Git LFS pointer in
    place of the index, a file this faiss cannot read (another faiss version, other bytes), an index whose
    size or dimension differs from its metadata, and queries of another dimension than the index.
    """

    def __init__(self, path: Path | str, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}; {REBUILD_HINT}")


def _faiss_problem(exc: RuntimeError, written_by: str | None) -> str:
    """What faiss's multi-part ``RuntimeError`` from ``read_index`` means, in a few words."""
    message = str(exc)
    origin = f"written by faiss {written_by}, " if written_by else ""
    if found := re.search(r"read error in .*?: (\d+) != (\d+)", message):
        return f"truncated or corrupt ({origin}faiss read {found[1]} of the {found[2]} bytes it expected)"
    if found := re.search(r"Index type \S+ \(\"(.*?)\"\) not recognized", message):
        return (
            f"not an index faiss {faiss.__version__} can read ({origin}unknown index type {found[1]!r}: "
            "another faiss version or another kind of file)"
        )
    detail = message.rsplit("Error: ", 1)[-1].splitlines()[0].strip()
    return f"not readable by faiss {faiss.__version__} ({origin}{detail[:200]})"


def _check_index_file(path: Path, metadata: dict[str, Any]) -> None:
    """Refuse, before faiss reads it, an index file that is missing, a Git LFS pointer, empty or truncated."""
    if not path.is_file():
        raise IndexFileError(path, "missing (its metadata file is there)")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(len(LFS_POINTER_PREFIX))
    if head == LFS_POINTER_PREFIX:
        raise IndexFileError(
            path, f"a Git LFS pointer ({size} bytes), not the index: `git lfs pull` fetches it"
        )
    if size == 0:
        raise IndexFileError(path, "empty file")
    expected = metadata.get("bytes")
    if expected is not None and size != int(expected):
        problem = "truncated" if size < int(expected) else "changed after it was written"
        raise IndexFileError(path, f"{problem}: {size} bytes, its metadata says {int(expected)}")


@contextmanager
def faiss_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` OpenMP threads for faiss (process-wide), restoring the previous count."""
    if threads is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _as_float32_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    return vectors


def _inner_index(index: faiss.Index) -> faiss.Index:
    """The index inside the ``IndexIDMap2`` wrapper, downcast to its concrete class."""
    return faiss.downcast_index(index.index)


def _metadata_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


@dataclass
class SimilarityIndex:
    index: faiss.Index
    kind: IndexKind
    n: int
    dim: int
    build_seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the file it was loaded from or saved to, for messages

    def apply_search_params(self) -> None:
        """Push the search-time knob in ``params`` (``ef_search`` / ``nprobe``) into the faiss index."""
        if self.kind == "hnsw":
            _inner_index(self.index).hnsw.efSearch = int(self.params["ef_search"])
        elif self.kind == "ivf":
            _inner_index(self.index).nprobe = int(self.params["nprobe"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` inner-product scores and nm ids per query, best first (id -1 where fewer than k found).

        Queries of another dimension than the index raise ``IndexFileError`` (faiss would only assert).
        """
        queries = _as_float32_rows(queries)
        if queries.shape[1] != self.index.d:
            raise IndexFileError(
                self.path or "the similarity index",
                f"has dimension {self.index.d}, the query vectors {queries.shape[1]} "
                "(the embeddings changed since it was built)",
            )
        return self.index.search(queries, k)

    def save(self, path: Path | str) -> Path:
        """Write the index atomically to ``path`` and its metadata to ``<path>.json``."""
        path = Path(path)
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))
            size = tmp.stat().st_size
        metadata = {
            "kind": self.kind,
            "n": self.n,
            "dim": self.dim,
            "build_seconds": self.build_seconds,
            "params": self.params,
            "bytes": size,
            "faiss_version": faiss.__version__,
        }
        write_json(metadata, _metadata_path(path))
        self.path = path
        return path

    @classmethod
    def load(cls, path: Path | str) -> SimilarityIndex:
        """The index at ``path`` with its ``<path>.json`` metadata; ``IndexFileError`` when either is damaged."""
        path = Path(path)
        metadata_path = _metadata_path(path)
        try:
            metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
            kind, n, dim = metadata["kind"], int(metadata["n"]), int(metadata["dim"])
            build_seconds, params = float(metadata["build_seconds"]), dict(metadata["params"])
        except FileNotFoundError:
            raise IndexFileError(metadata_path, "missing (the index's metadata)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFileError(
                metadata_path, f"unreadable metadata ({type(exc).__name__}: {exc})"
            ) from None
        _check_index_file(path, metadata)
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexFileError(path, _faiss_problem(exc, metadata.get("faiss_version"))) from None
        if index.d != dim or index.ntotal != n:
            raise IndexFileError(
                path, f"holds {index.ntotal} vectors of dimension {index.d}, its metadata says {n} of {dim}"
            )
        if not hasattr(index, "id_map"):  # every index we write is an IndexIDMap2 (searches return nm ids)
            raise IndexFileError(path, f"a {type(index).__name__}, not an index keyed by nm")
        loaded = cls(
            index=index, kind=kind, n=n, dim=dim, build_seconds=build_seconds, params=params, path=path
        )
        try:
            loaded.apply_search_params()
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise IndexFileError(path, f"does not match its metadata's kind {kind!r} ({exc})") from None
        return loaded


def default_ivf_nlist(n: int) -> int:
    """~4 sqrt(n) inverted lists, fewer when n is too small to train them."""
    return max(1, min(int(4 * math.sqrt(n)), n // IVF_TRAIN_POINTS_PER_LIST))


def build_index(
    vectors: np.ndarray,
    ids: np.ndarray,
    exact_max: int = 200_000,
    kind: ApproximateKind = DEFAULT_KIND,
    hnsw_m: int = 32,
    ef_construction: int = 80,
    ef_search: int = 128,
    ivf_nlist: int | None = None,
    ivf_nprobe: int = 16,
    threads: int | None = None,
    seed: int = 0,
) -> SimilarityIndex:
    """Index L2-normalised ``vectors`` under int64 ``ids``: exact up to ``exact_max`` rows, ``kind`` above.

    ``seed`` picks the IVF training sample; ``threads`` sets faiss's OpenMP threads for the build.
    """
    vectors = _as_float32_rows(vectors)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n, dim = vectors.shape
    if ids.shape != (n,):
        raise ValueError(f"ids shape {ids.shape} does not match {n} vectors")

    started = time.perf_counter()
    with faiss_threads(threads):
        if n <= exact_max:
            index_kind: IndexKind = "flat"
            params: dict[str, Any] = {}
            inner = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index_kind = "hnsw"
            params = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search}
            inner = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = ef_construction
        elif kind == "ivf":
            index_kind = "ivf"
            nlist = min(ivf_nlist or default_ivf_nlist(n), n)
            train_size = min(n, IVF_TRAIN_POINTS_PER_LIST * nlist)
            params = {"nlist": nlist, "nprobe": ivf_nprobe, "train_size": train_size}
            inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(seed).choice(n, size=train_size, replace=False)
            inner.train(vectors[np.sort(sample)])
        else:
            raise ValueError(f"unknown approximate index kind {kind!r}")
        index = faiss.IndexIDMap2(inner)
        index.add_with_ids(vectors, ids)
    built = SimilarityIndex(
        index=index,
        kind=index_kind,
        n=n,
        dim=dim,
        build_seconds=time.perf_counter() - started,
        params=params,
    )
    built.apply_search_params()
    return built


def approximate_recall_at_k(
    index: SimilarityIndex, vectors: np.ndarray, k: int = 10, n_queries: int = 1000, seed: int = 0
) -> float:
    """Share of the exact top-``k`` (brute force over ``vectors``) that ``index`` also returns.

    ``vectors`` must be the indexed rows in the order they were added. Queries are a random sample of them.
    """
    if index.kind == "flat":
        return 1.0
    vectors = _as_float32_rows(vectors)
    rows = np.random.default_rng(seed).choice(len(vectors), size=min(n_queries, len(vectors)), replace=False)
    queries = vectors[np.sort(rows)]
    _, exact_rows = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    exact_ids = faiss.vector_to_array(index.index.id_map)[exact_rows]
    _, found_ids = index.search(queries, k)
    hits = sum(len(np.intersect1d(exact, found)) for exact, found in zip(exact_ids, found_ids, strict=True))
    return hits / exact_ids.size
