"""Embedding catalogue batches from the store (no Dagster here): what the embeddings asset runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mm_pipeline.inference.encoders import EmbeddingStats, OnnxEncoders, write_embeddings
from mm_pipeline.layout import Layout
from mm_pipeline.prep.images import open_tensor_store
from mm_pipeline.storage import atomic_paths


class ImageSizeError(ValueError):
    """A batch's image tensors are of another resolution than the model reads."""


@dataclass(frozen=True)
class EmbeddedBatch:
    batch: str
    path: Path  # layout.embeddings(batch)
    stats: EmbeddingStats


def embed_batches(
    layout: Layout,
    encoders: OnnxEncoders,
    batches: Sequence[str],
    progress: Callable[[str, int, int], None] | None = None,
) -> list[EmbeddedBatch]:
    """Embed each batch's cleaned texts and image tensors into ``layout.embeddings(batch)``; ``progress`` gets
    ``(batch, done, total)``.

    All or nothing: every batch is written to a temporary file, and the files replace the old ones only once
    every batch succeeded, so a failure (e.g. :class:`ImageSizeError`) leaves every file as it was."""
    embedded = []
    with atomic_paths([layout.embeddings(b) for b in batches]) as staged:
        for batch, target in zip(batches, staged, strict=True):
            products = pd.read_parquet(layout.cleaned_text(batch), columns=["nm", "text"])
            store = open_tensor_store(layout.image_tensors(batch))
            if store.shape[1] != encoders.image_size:
                raise ImageSizeError(
                    f"{batch}: image tensors are {store.shape[1]}px, the model wants {encoders.image_size}px"
                )

            def log_progress(done: int, total: int, batch: str = batch) -> None:
                if progress is not None:
                    progress(batch, done, total)

            stats = write_embeddings(
                encoders,
                products["nm"].to_numpy(),
                products["text"].tolist(),
                lambda s, e, store=store: store[s:e],
                target,
                progress=log_progress,
            )
            embedded.append(EmbeddedBatch(batch, layout.embeddings(batch), stats))
    return embedded
