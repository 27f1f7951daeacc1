"""The served catalogue: the registered batches' embeddings, all of the current model version, one row per nm."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.inference.encoders import ParityError, execution_providers, read_vectors, resolve_variant
from mm_pipeline.publish.vectors import MixedModelVersionsError, one_row_per_nm_problem, require_model_version
from mm_pipeline.storage import pin


def current_model_version(settings: PipelineSettings) -> str:
    """``<export version>-<variant>`` that ``embeddings`` writes now on this machine (the variant
    ``MM_ONNX_VARIANT`` resolves to among those that passed parity)."""
    onnx_dir = pin(settings.layout.onnx_dir)
    try:
        providers = execution_providers(settings.device)
        variant = resolve_variant(onnx_dir, settings.onnx_variant, settings.workers, providers).variant
    except (ParityError, FileNotFoundError, ValueError) as exc:
        raise dg.Failure(f"no usable ONNX export: {exc}") from None
    return f"{json.loads((onnx_dir / 'manifest.json').read_text())['model_version']}-{variant}"


def served_batches(settings: PipelineSettings, instance: dg.DagsterInstance) -> dict[str, Path]:
    """Registered batches with embeddings (batch → file, in partition order), every one made by the current
    model version; raises ``dg.Failure`` naming the stale batches rather than mixing two models' vectors."""
    layout = settings.layout
    paths = {
        batch: layout.embeddings(batch)
        for batch in sorted(instance.get_dynamic_partitions(catalogue_batches.name))
        if layout.embeddings(batch).exists()
    }
    if not paths:
        raise dg.Failure("no embeddings yet; materialize the embeddings partitions first")
    try:
        require_model_version(paths, current_model_version(settings))
    except MixedModelVersionsError as exc:
        raise dg.Failure(str(exc), metadata={"stale_batches": ", ".join(sorted(exc.stale))}) from None
    return paths


def catalogue_lookup(
    settings: PipelineSettings, instance: dg.DagsterInstance
) -> tuple[pd.DataFrame, np.ndarray]:
    """``(lookup, fused)``: ``nm``, ``title``, ``batch`` and ``model_version`` per product and float32
    ``[N, D]`` fused vectors of the served batches; ``dg.Failure`` on stale batches or a repeated nm."""
    frames, vectors = [], []
    for batch, path in served_batches(settings, instance).items():
        nm, fused = read_vectors(path, "fused")
        titles = pd.read_parquet(settings.layout.cleaned_text(batch), columns=["nm", "title_clean"])
        version = pd.read_parquet(path, columns=["model_version"])["model_version"].to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "nm": nm,
                    "title": titles.set_index("nm")["title_clean"].reindex(nm).to_numpy(),
                    "batch": batch,
                    "model_version": version,
                }
            )
        )
        vectors.append(fused)
    lookup = pd.concat(frames, ignore_index=True)
    problem = one_row_per_nm_problem(lookup["nm"], lookup["batch"])
    if problem:
        raise dg.Failure(f"not serving the catalogue: {problem}; retire or fix the batch files")
    return lookup, np.concatenate(vectors).astype(np.float32)
