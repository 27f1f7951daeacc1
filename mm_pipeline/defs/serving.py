"""What is served now, for every area: the current ONNX export (the variant ``MM_ONNX_VARIANT`` resolves to,
its encoders, the model version its vectors carry) and the served catalogue (the registered batches embedded
by it, :mod:`mm_pipeline.publish.catalogue`), with the ``one_row_per_nm`` check that the index and the
published table both carry. Each turns the core's refusal into a ``dg.Failure`` that names the problem."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from mm_pipeline.defs.automation.gating import latest_materialization
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings, materialized_batches
from mm_pipeline.inference.encoders import (
    OnnxEncoders,
    ParityError,
    VariantChoice,
    execution_providers,
    resolve_variant,
)
from mm_pipeline.layout import Layout
from mm_pipeline.model.pairs import BatchFiles
from mm_pipeline.publish import catalogue
from mm_pipeline.publish.gates import VERDICT
from mm_pipeline.publish.vectors import MixedModelVersionsError
from mm_pipeline.storage import pin

ONE_ROW_PER_NM = "one_row_per_nm"


def _variant(settings: PipelineSettings, onnx_dir: Path) -> VariantChoice:
    providers = execution_providers(settings.device)
    return resolve_variant(onnx_dir, settings.onnx_variant, settings.workers, providers)


def checked_encoders(settings: PipelineSettings) -> tuple[OnnxEncoders, VariantChoice]:
    """ONNX sessions of the current export in the variant ``MM_ONNX_VARIANT`` resolves to (only one that passed
    parity; ``auto``: the clearly fastest on this CPU), on the GPU when ``MM_DEVICE`` allows it and onnxruntime-gpu is
    installed, and that choice. Raises ``dg.Failure`` when no variant passed or the setting is unknown."""
    onnx_dir = pin(settings.layout.onnx_dir)  # parity report and model files of one export version
    try:
        choice = _variant(settings, onnx_dir)
    except (ParityError, ValueError) as exc:
        raise dg.Failure(str(exc)) from None
    encoders = OnnxEncoders(onnx_dir, choice.variant, threads=settings.workers, device=settings.device)
    return encoders, choice


def current_model_version(settings: PipelineSettings) -> str:
    """``<export version>-<variant>`` that ``embeddings`` writes now on this machine (the variant
    ``MM_ONNX_VARIANT`` resolves to among those that passed parity)."""
    onnx_dir = pin(settings.layout.onnx_dir)
    try:
        variant = _variant(settings, onnx_dir).variant
    except (ParityError, FileNotFoundError, ValueError) as exc:
        raise dg.Failure(f"no usable ONNX export: {exc}") from None
    return catalogue.model_version(settings.layout, onnx_dir, variant)


def _registered(instance: dg.DagsterInstance) -> list[str]:
    return instance.get_dynamic_partitions(catalogue_batches.name)


INGEST_ASSETS = ("raw_products", "cleaned_text", "image_tensors")


def latest_storage_id(instance: dg.DagsterInstance, asset: str, partition: str) -> int:
    """The event log storage id of the latest materialization of ``asset`` at ``partition`` (0: none)."""
    record = latest_materialization(instance, dg.AssetKey(asset), partition)
    return 0 if record is None else record.storage_id


def latest_ingest(instance: dg.DagsterInstance, batch: str) -> int:
    """The storage id of ``batch``'s latest ingest materialization (``INGEST_ASSETS``; 0: never ingested)."""
    return max(latest_storage_id(instance, asset, batch) for asset in INGEST_ASSETS)


def stale_batches(settings: PipelineSettings, instance: dg.DagsterInstance) -> dict[str, str]:
    """Ingested batches whose vectors are not what serving needs, batch → why: embedded by another model, not
    embedded at all (a failed or cancelled run), or embedded before the batch's latest ingest (its file
    changed and was ingested again)."""
    by_model = catalogue.stale_batches(
        settings.layout, _registered(instance), lambda: current_model_version(settings)
    )
    stale = {batch: f"embedded by {', '.join(found) or 'no model'}" for batch, found in by_model.items()}
    for batch in materialized_batches(settings, instance):
        if batch.name in stale:
            continue
        if not settings.layout.embeddings(batch.name).exists():
            stale[batch.name] = "not embedded"
        elif latest_storage_id(instance, "embeddings", batch.name) < latest_ingest(instance, batch.name):
            stale[batch.name] = "embedded before its latest ingest"
    return stale


def served_batches(settings: PipelineSettings, instance: dg.DagsterInstance) -> dict[str, Path]:
    """Registered batches with embeddings (batch → file, in partition order), every one made by the current
    model version; raises ``dg.Failure`` naming the stale batches rather than mixing two models' vectors."""
    try:
        return catalogue.served_batches(
            settings.layout, _registered(instance), lambda: current_model_version(settings)
        )
    except catalogue.NoEmbeddingsError as exc:
        raise dg.Failure(str(exc)) from None
    except MixedModelVersionsError as exc:
        raise dg.Failure(str(exc), metadata={"stale_batches": ", ".join(sorted(exc.stale))}) from None


def served_batch_files(settings: PipelineSettings, instance: dg.DagsterInstance) -> list[BatchFiles]:
    """The cleaned text and image tensors of the served batches (:func:`served_batches`)."""
    served = served_batches(settings, instance)
    return [b for b in materialized_batches(settings, instance) if b.name in served]


def catalogue_lookup(
    settings: PipelineSettings, instance: dg.DagsterInstance
) -> tuple[pd.DataFrame, np.ndarray]:
    """``(lookup, fused)`` of the served batches (:func:`mm_pipeline.publish.catalogue.catalogue_lookup`);
    ``dg.Failure`` on stale batches or a repeated nm."""
    paths = served_batches(settings, instance)
    try:
        return catalogue.catalogue_lookup(settings.layout, paths)
    except catalogue.RepeatedProductsError as exc:
        raise dg.Failure(str(exc)) from None


def one_row_per_nm_check(
    asset: dg.AssetsDefinition, read: Callable[[Layout], pd.DataFrame], description: str
) -> dg.AssetChecksDefinition:
    """The blocking ``one_row_per_nm`` check of ``asset``, on the table ``read`` returns (``nm``, ``batch``)."""

    @dg.asset_check(asset=asset, name=ONE_ROW_PER_NM, blocking=True, description=description)
    def one_row_per_nm(settings: PipelineSettings) -> dg.AssetCheckResult:
        count = catalogue.count_rows(read(settings.layout))
        return dg.AssetCheckResult(
            passed=count.problem is None,
            metadata={
                "rows": count.rows,
                "products": count.products,
                VERDICT: count.problem or "one row per nm",
            },
            description=count.problem,
        )

    return one_row_per_nm
