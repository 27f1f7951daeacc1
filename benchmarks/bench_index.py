"""Exact vs approximate faiss search on synthetic clustered embeddings: build time, queries/s, recall@10.

    python benchmarks/bench_index.py [--sizes 100000 1000000] [--dim 1024] [--kinds hnsw ivf] [--quick]

Builds go through ``mm_pipeline.evaluation.similarity.build_index`` with its defaults, so the rows marked
``*`` are what the pipeline gets above ``exact_max``; other rows sweep the search-time knob on the same index.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import numpy as np

from mm_pipeline.evaluation.similarity import build_index, faiss_threads

SEARCH_SWEEPS = {"hnsw": ("ef_search", (32, 64, 128, 256)), "ivf": ("nprobe", (4, 8, 16, 32))}


def clustered_unit_vectors(
    n: int,
    dim: int,
    n_topics: int = 100,
    clusters_per_topic: int = 100,
    cluster_offset: float = 0.4,
    latent_dim: int = 64,
    within_spread: float = 0.8,
    noise: float = 0.25,
    seed: int = 0,
    chunk_rows: int = 65_536,
) -> np.ndarray:
    """``n`` L2-normalised float32 rows from a two-level mixture (topic -> cluster) with low-rank spread.

    Within-cluster variation lives mostly in a ``latent_dim`` subspace (real embeddings have low intrinsic
    dimension) plus small isotropic noise. Clusters of a topic overlap (true top-10 neighbours have cosine
    ~0.67-0.71, like real image/text embeddings), so a query's neighbours straddle IVF cells / HNSW regions. Rows are generated chunk by chunk into the output array: peak memory ~ one copy.
    """
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((n_topics, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
    n_clusters = n_topics * clusters_per_topic
    centres = np.repeat(topics, clusters_per_topic, axis=0)
    centres += rng.standard_normal((n_clusters, dim), dtype=np.float32) * np.float32(
        cluster_offset / np.sqrt(dim)
    )
    spread = rng.standard_normal((latent_dim, dim), dtype=np.float32) * np.float32(
        0.5 / np.sqrt(dim * latent_dim)
    )
    noise_scale = np.float32(noise / np.sqrt(dim))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        block = out[start : start + chunk_rows]
        rows = len(block)
        np.take(centres, rng.integers(n_clusters, size=rows), axis=0, out=block)
        block += rng.standard_normal((rows, latent_dim), dtype=np.float32) @ spread
        block += rng.standard_normal((rows, dim), dtype=np.float32) * noise_scale
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed_search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    """Ids plus queries per wall second and per CPU second (the latter is less sensitive to other load)."""
    wall, cpu = time.perf_counter(), time.process_time()
    _, ids = index.search(queries, k)
    return ids, len(queries) / (time.perf_counter() - wall), len(queries) / (time.process_time() - cpu)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    return sum(len(np.intersect1d(f, e)) for f, e in zip(found, exact, strict=True)) / exact.size


def bench_size(n: int, dim: int, n_queries: int, kinds: list[str], k: int, seed: int) -> list[dict]:
    data = clustered_unit_vectors(n + n_queries, dim, seed=seed)
    vectors, queries = data[:n], data[n:].copy()  # queries are unseen rows of the same distribution
    ids = np.arange(n, dtype=np.int64)
    rows = []

    exact = build_index(vectors, ids, exact_max=n)
    exact_ids, exact_qps, exact_cpu_qps = timed_search(exact, queries, k)
    rows.append(
        {
            "n": n,
            "index": "flat",
            "params": "",
            "build_s": exact.build_seconds,
            "qps": exact_qps,
            "cpu_qps": exact_cpu_qps,
        }
    )
    print(f"  n={n:,} flat: {exact_qps:,.0f} q/s", flush=True)
    del exact
    gc.collect()

    for kind in kinds:
        index = build_index(vectors, ids, exact_max=0, kind=kind)
        knob, values = SEARCH_SWEEPS[kind]
        default = index.params[knob]
        build_params = ", ".join(f"{key}={value}" for key, value in index.params.items() if key != knob)
        print(f"  n={n:,} {kind} built in {index.build_seconds:,.0f} s ({build_params})", flush=True)
        for value in sorted({*values, default}):
            index.params[knob] = value
            index.apply_search_params()
            found, qps, cpu_qps = timed_search(index, queries, k)
            rows.append(
                {
                    "n": n,
                    "index": kind + ("*" if value == default else ""),
                    "params": f"{build_params}, {knob}={value}",
                    "build_s": index.build_seconds,
                    "qps": qps,
                    "cpu_qps": cpu_qps,
                    "recall": recall_at_k(found, exact_ids),
                }
            )
        del index
        gc.collect()

    for row in rows:
        row.setdefault("recall", 1.0)
        row["speedup"] = row["qps"] / exact_qps
        row["cpu_speedup"] = row["cpu_qps"] / exact_cpu_qps
    return rows


def print_table(rows: list[dict], k: int) -> None:
    header = f"{'n':>9}  {'index':<6} {'build s':>8} {'q/s':>8} {'x exact':>8} {'x (cpu)':>8} {f'recall@{k}':>9}  params"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['n']:>9,}  {row['index']:<6} {row['build_s']:>8.1f} {row['qps']:>8,.0f} {row['speedup']:>8.1f} "
            f"{row['cpu_speedup']:>8.1f} {row['recall']:>9.3f}  {row['params']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=sorted(SEARCH_SWEEPS),
        default=["ivf"],
        help="approximate kinds to compare with exact (hnsw at 1M x 1024 takes >15 min to build on 2 cores)",
    )
    parser.add_argument("--queries", type=int, default=2000, help="batch of queries per measurement")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="faiss OpenMP threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k x 128, 500 queries")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.dim, args.queries = [20_000], 128, 500

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rows = []
    with faiss_threads(args.threads):
        for n in args.sizes:
            rows += bench_size(n, args.dim, args.queries, args.kinds, args.k, args.seed)
    print(f"load average after: {os.getloadavg()[0]:.1f}  ('x (cpu)' = ratio of CPU seconds per query)")
    print_table(rows, args.k)


if __name__ == "__main__":
    main()
