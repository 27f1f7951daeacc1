"""The published catalogue as one table: nm, title, batch and fused vectors of every embedded batch."""

import dagster as dg
import numpy as np
import pandas as pd

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.inference.encoders import read_vectors


def catalogue_lookup(
    settings: PipelineSettings, instance: dg.DagsterInstance
) -> tuple[pd.DataFrame, np.ndarray]:
    layout = settings.layout
    frames, vectors = [], []
    for batch in sorted(instance.get_dynamic_partitions(catalogue_batches.name)):
        if not layout.embeddings(batch).exists():
            continue
        nm, fused = read_vectors(layout.embeddings(batch), "fused")
        titles = pd.read_parquet(layout.cleaned_text(batch), columns=["nm", "title_clean"]).set_index("nm")
        frames.append(
            pd.DataFrame({"nm": nm, "title": titles["title_clean"].reindex(nm).to_numpy(), "batch": batch})
        )
        vectors.append(fused)
    if not frames:
        raise dg.Failure("no embeddings yet; materialize the embeddings partitions first")
    return pd.concat(frames, ignore_index=True), np.concatenate(vectors).astype(np.float32)
