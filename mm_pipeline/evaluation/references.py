"""Reference vectors that learn nothing from the catalogue: TF-IDF of the text, raw pixels, and both.

A learned product vector is only worth its cost where it beats these. The label tasks probe them inside
their folds (:func:`mm_pipeline.evaluation.probes.reference_probes`) and search neighbours in them; the
duplicates metric scores them as vector kinds of its own. Kinds (``REFERENCE_KINDS``):

* ``tfidf``: word 1-2-grams of the whole text plus char_wb 3-5-grams of its first 200 characters, sublinear
  TF-IDF, each block L2-normalised, the concatenation scaled to unit length
  (:func:`~mm_pipeline.evaluation.probes.tfidf_matrix`).
* ``pixels``: each image area-averaged to 24x24x3 (:func:`pixel_features`), centred and projected on its
  64 principal axes, unit length (:func:`pixel_vectors`).
* ``tfidf+pixels``: both, each scaled by 1/sqrt(2): the cosine is the mean of the two cosines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import TruncatedSVD

from mm_pipeline.evaluation.probes import as_matrix, fit_pca, tfidf_matrix
from mm_pipeline.inference.encoders import l2_normalize
from mm_pipeline.model.pairs import BatchFiles
from mm_pipeline.prep.images import open_tensor_store

REFERENCE_KINDS = ("tfidf", "pixels", "tfidf+pixels")
PIXEL_SIDE = 24
PIXEL_COMPONENTS = 64
TFIDF_DIM = 512


def pixel_features(
    images: np.ndarray, rows: np.ndarray | None = None, size: int = PIXEL_SIDE, chunk_rows: int = 512
) -> np.ndarray:
    """Area-averaged ``size``x``size`` thumbnails of uint8 images, flattened: float32
    ``[len(rows), size * size * 3]`` with values in [0, 1] (row-major: y, x, channel).

    ``images`` is uint8 ``[N, H, W, 3]``, typically a memory-mapped tensor store: only ``chunk_rows`` images
    are read at a time. ``rows`` (int indices, any order) selects them, by default all. H and W need not be
    multiples of ``size``: each output cell averages the pixels of its area (adaptive average pooling).
    Raises ValueError for any other dtype or shape.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), size * size * 3), np.float32)
    for start in range(0, len(rows), chunk_rows):
        chunk = torch.from_numpy(np.ascontiguousarray(images[rows[start : start + chunk_rows]]))
        pooled = torch.nn.functional.adaptive_avg_pool2d(chunk.permute(0, 3, 1, 2).float(), size)
        out[start : start + len(chunk)] = pooled.permute(0, 2, 3, 1).reshape(len(chunk), -1).numpy()
    out /= 255.0
    return out


def _locate(batches: Sequence[BatchFiles], nm: np.ndarray) -> pd.DataFrame:
    """Per requested ``nm`` (in order): ``store`` (position in ``batches``) and ``row`` in that batch's tensor
    store, whose rows follow its cleaned_text rows. Raises KeyError for an nm in no batch."""
    frames = [
        pd.read_parquet(batch.cleaned_text, columns=["nm"]).assign(
            store=position, row=lambda f: np.arange(len(f))
        )
        for position, batch in enumerate(batches)
    ]
    return pd.concat(frames, ignore_index=True).set_index("nm").loc[np.asarray(nm)]


def images_of(batches: Sequence[BatchFiles], nm: np.ndarray) -> np.ndarray:
    """The stored images of products ``nm`` (any batches, any order): uint8 ``[len(nm), S, S, 3]``.
    Raises KeyError for an nm in no batch."""
    where = _locate(batches, nm)
    stores = [open_tensor_store(batch.image_tensors) for batch in batches]
    out = np.empty((len(where), *stores[0].shape[1:]), np.uint8)
    for position, store in enumerate(stores):
        selected = (where["store"] == position).to_numpy()
        out[selected] = store[where["row"].to_numpy()[selected]]
    return out


def pixel_features_of(batches: Sequence[BatchFiles], nm: np.ndarray, size: int = PIXEL_SIDE) -> np.ndarray:
    """:func:`pixel_features` of products ``nm`` (any batches, any order), read from the memory-mapped tensor
    stores chunk by chunk: float32 ``[len(nm), size * size * 3]``. Raises KeyError for an nm in no batch."""
    where = _locate(batches, nm)
    out = np.empty((len(where), size * size * 3), np.float32)
    for position, batch in enumerate(batches):
        selected = (where["store"] == position).to_numpy()
        if selected.any():
            store = open_tensor_store(batch.image_tensors)
            out[selected] = pixel_features(store, where["row"].to_numpy()[selected], size)
    return out


def pixel_vectors(
    features: np.ndarray, n_components: int = PIXEL_COMPONENTS, max_rows: int = 8192, seed: int = 0
) -> np.ndarray:
    """The ``pixels`` reference: float32 ``[n, min(n_components, d)]`` unit rows, ``features`` (``[n, d]``,
    from :func:`pixel_features`) centred and projected on the principal axes of at most ``max_rows`` sampled
    rows."""
    x = torch.from_numpy(as_matrix(features, len(features)))
    mean, components = fit_pca(x, n_components, max_rows, torch.Generator().manual_seed(seed))
    return l2_normalize(((x - mean) @ components).numpy().astype(np.float32))


def tfidf_vectors(texts: Sequence[str], dim: int = TFIDF_DIM, seed: int = 0) -> np.ndarray:
    """The ``tfidf`` reference as dense float32 unit rows of at most ``dim`` columns.

    Inner products equal the TF-IDF cosines exactly while the TF-IDF matrix has rank <= ``dim`` (fewer
    texts or terms than ``dim``); beyond, the rows are its top ``dim`` singular directions (LSA), scaled
    back to unit length.
    """
    x = tfidf_matrix(texts)
    n, terms = x.shape
    if n <= dim and n <= terms:  # exact: the Gram matrix factorised
        values, vectors = np.linalg.eigh((x @ x.T).toarray().astype(np.float64))
        dense = vectors * np.sqrt(np.clip(values, 0.0, None))
    elif terms <= dim:
        dense = x.toarray()
    else:
        dense = TruncatedSVD(dim, algorithm="randomized", random_state=seed).fit_transform(x)
    return l2_normalize(np.asarray(dense, dtype=np.float32))


def reference_vectors(texts: Sequence[str], images: np.ndarray) -> dict[str, np.ndarray]:
    """Every kind of ``REFERENCE_KINDS`` for products given as texts and uint8 ``[N, H, W, 3]`` images: float32
    unit rows, ``tfidf`` from :func:`tfidf_vectors`, ``pixels`` from :func:`pixel_vectors`."""
    tfidf, pixels = tfidf_vectors(texts), pixel_vectors(pixel_features(images))
    both = np.hstack([tfidf, pixels]) / np.sqrt(2.0)
    return {"tfidf": tfidf, "pixels": pixels, "tfidf+pixels": both.astype(np.float32)}
