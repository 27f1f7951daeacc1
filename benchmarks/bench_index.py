import numpy as np


def clustered_unit_vectors(
    n: int,
    dim: int,
    n_clusters: int = 1000,
    latent_dim: int = 32,
    within_spread: float = 0.6,
    noise: float = 0.25,
    seed: int = 0,
    chunk_rows: int = 65_536,
) -> np.ndarray:
    """``n`` L2-normalised float32 rows: random cluster centre + low-rank within-cluster variation + noise.

    The variation lives mostly in a ``latent_dim`` subspace, like real embeddings with low intrinsic dimension.
    Rows are generated chunk by chunk straight into the output array, so peak memory is ~one copy.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = rng.standard_normal((latent_dim, dim), dtype=np.float32) * np.float32(within_spread / np.sqrt(dim * latent_dim))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        block = out[start : start + chunk_rows]
        rows = len(block)
        np.take(centres, rng.integers(n_clusters, size=rows), axis=0, out=block)
        block += rng.standard_normal((rows, latent_dim), dtype=np.float32) @ basis
        block += rng.standard_normal((rows, dim), dtype=np.float32) * np.float32(noise / np.sqrt(dim))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out
