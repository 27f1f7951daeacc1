"""The eval split as every metric reads it (no Dagster here): the base model's vectors of the eval products,
written once by ``base_model_embeddings``, and the :class:`~mm_pipeline.evaluation.tasks.EvalSet` that lines
them up with the fine-tuned vectors, texts and thumbnails of the served batches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mm_pipeline.evaluation.references import pixel_features_of
from mm_pipeline.evaluation.tasks import VECTOR_KINDS, EvalSet
from mm_pipeline.inference.encoders import read_vectors
from mm_pipeline.layout import Layout
from mm_pipeline.model.clip import load_folder
from mm_pipeline.model.pairs import BatchFiles, load_pairs, training_split
from mm_pipeline.model.validation import encode_pairs
from mm_pipeline.storage import atomic_dir, pin, save_npy, write_parquet

BASE_KINDS = ("image", "text")  # the base model's vectors kept per eval product


class UnservedProductsError(ValueError):
    """The base model's vectors cover products that no served batch holds (a batch retired since)."""


def write_base_embeddings(layout: Layout, batches: Sequence[BatchFiles], eval_fraction: float) -> int:
    """Encode the eval-split products of ``batches`` with the base model and write the set
    ``layout.base_embeddings_dir``: float32 ``[n, d]`` per kind of ``BASE_KINDS`` and their ``nm``, row for
    row. Returns n."""
    model = load_folder(layout.model_dir("base"))
    pairs, products = load_pairs(batches, model.tokenizer, layout.token_dir)
    rows = np.flatnonzero(training_split(products, eval_fraction, 0.0)["eval"])
    image, text = encode_pairs(model.clip, pairs.subset(np.isin(np.arange(len(pairs)), rows)))
    with atomic_dir(layout.base_embeddings_dir) as folder:
        for kind, vectors in zip(BASE_KINDS, (image, text), strict=True):
            save_npy(vectors.numpy(), folder / layout.base_vectors(kind).name)
        write_parquet(products.iloc[rows][["nm"]], folder / layout.base_nm.name)
    return len(rows)


def read_base_embeddings(layout: Layout) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(nm, vectors)`` from one version of the set: int64 ``[n]`` and float32 ``[n, d]`` per kind."""
    folder = pin(layout.base_embeddings_dir)
    nm = pd.read_parquet(folder / layout.base_nm.name)["nm"].to_numpy()
    return nm, {kind: np.load(folder / layout.base_vectors(kind).name) for kind in BASE_KINDS}


def load_eval_set(layout: Layout, batches: Sequence[BatchFiles]) -> EvalSet:
    """The eval products of the served ``batches`` with their fine-tuned vectors (every vector column all the
    batches' embeddings have, as stored), base-model vectors and 24x24 thumbnails from the image tensor stores,
    in the base model's row order. Its vector and thumbnail arrays are read-only; treat the rest as read-only
    too.

    The process keeps the last set loaded for as long as none of the files it was read from changes (path,
    inode, size and modification time), so the metric steps of one in-process run (``mm-pipeline run``) read
    and vectorize it once instead of once per task. Raises :class:`UnservedProductsError` when the base
    vectors hold a product none of ``batches`` has."""
    signature = _inputs_signature(layout, batches)
    if signature not in _LAST_LOADED:
        _LAST_LOADED.clear()
        _LAST_LOADED[signature] = _read_eval_set(layout, batches)
    return _LAST_LOADED[signature]


_LAST_LOADED: dict[tuple, EvalSet] = {}


def _inputs_signature(layout: Layout, batches: Sequence[BatchFiles]) -> tuple:
    """What identifies the inputs of :func:`load_eval_set`: every file it reads, with inode, size and mtime
    (files are replaced by atomic renames, so a rewrite is a new inode)."""
    base = pin(layout.base_embeddings_dir)
    paths = [base / layout.base_nm.name, *(base / layout.base_vectors(kind).name for kind in BASE_KINDS)]
    for batch in batches:
        paths += [batch.cleaned_text, layout.embeddings(batch.name), batch.image_tensors]
    signature = []
    for path in map(Path, paths):
        # a missing file is left for the read to report
        stat = path.stat() if path.exists() else None
        identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns) if stat else None
        signature.append((str(path.resolve()), identity))
    return tuple(signature)


def _read_eval_set(layout: Layout, batches: Sequence[BatchFiles]) -> EvalSet:
    products = pd.concat([pd.read_parquet(b.cleaned_text) for b in batches], ignore_index=True)
    schemas = [set(pq.read_schema(layout.embeddings(b.name)).names) for b in batches]
    tuned = {}
    for column in [kind for kind in VECTOR_KINDS if all(kind in names for names in schemas)]:
        parts = [read_vectors(layout.embeddings(b.name), column) for b in batches]
        nm = np.concatenate([p[0] for p in parts])
        tuned[column] = np.concatenate([p[1] for p in parts])
    base_nm, base = read_base_embeddings(layout)
    unserved = np.setdiff1d(base_nm, nm)
    if len(unserved):  # e.g. products of a batch retired since base_model_embeddings ran
        raise UnservedProductsError(
            f"base_model_embeddings holds {len(unserved)} products no served batch has (e.g. nm {unserved[0]}); "
            "rematerialize base_model_embeddings (evaluation_job does)"
        )
    rows = pd.Series(np.arange(len(nm)), index=nm).loc[base_nm].to_numpy()
    eval_products = products.set_index("nm").loc[base_nm].reset_index()
    data = EvalSet.build(
        eval_products, {k: v[rows] for k, v in tuned.items()}, base, pixel_features_of(batches, base_nm)
    )
    for array in [*data.tuned.values(), *data.base.values(), data.pixels, data.pixel_vectors]:
        array.setflags(write=False)
    return data
