"""Embeddings: image, text and fused vectors per catalogue batch, computed with ONNX Runtime."""

from pathlib import Path

import dagster as dg
import pandas as pd

from mm_pipeline.defs.model.assets import MODEL_POOL, onnx_model
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.inference.encoders import OnnxEncoders, ParityError, choose_variant, write_embeddings
from mm_pipeline.prep.images import open_tensor_store
from mm_pipeline.storage import pin


def checked_encoders(onnx_dir: Path, settings: PipelineSettings) -> OnnxEncoders:
    """ONNX sessions of the current export in the configured variant, only if that variant passed parity."""
    onnx_dir = pin(onnx_dir)  # parity report and model files of one export version
    try:
        variant = choose_variant(onnx_dir, settings.onnx_variant)
    except ParityError as exc:
        raise dg.Failure(str(exc)) from None
    return OnnxEncoders(onnx_dir, variant, threads=settings.workers)


@dg.asset(
    partitions_def=catalogue_batches,
    deps=[onnx_model, "cleaned_text", "image_tensors"],
    group_name="embeddings",
    kinds={"onnx", "parquet"},
    pool=MODEL_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=dg.AutomationCondition.eager(),
    description="Per product: L2-normalized image and text vectors and the fused vector (their concatenation), "
    "keyed by nm, with the model version. A backfill embeds its whole range of batches in one run, loading "
    "the ONNX sessions once.",
)
def embeddings(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    layout = settings.layout
    encoders = checked_encoders(layout.onnx_dir, settings)
    rows = []
    for batch in context.partition_keys:
        products = pd.read_parquet(layout.cleaned_text(batch), columns=["nm", "text"])
        store = open_tensor_store(layout.image_tensors(batch))
        if store.shape[1] != encoders.image_size:
            raise dg.Failure(
                f"{batch}: image tensors are {store.shape[1]}px, the model wants {encoders.image_size}px"
            )

        def log_progress(done: int, total: int, batch: str = batch) -> None:
            context.log.info(f"{batch}: embedded {done}/{total}")

        stats = write_embeddings(
            encoders,
            products["nm"].to_numpy(),
            products["text"].tolist(),
            lambda s, e, store=store: store[s:e],
            layout.embeddings(batch),
            progress=log_progress,
        )
        rows.append(
            {
                "batch": batch,
                "path": str(layout.embeddings(batch)),
                "products": stats.count,
                "seconds": round(stats.seconds, 2),
                "disk_bytes": stats.bytes_on_disk,
            }
        )
    return dg.MaterializeResult(
        metadata={
            "count": sum(r["products"] for r in rows),
            "dims": dg.MetadataValue.json(stats.dims),
            "onnx_variant": encoders.variant,
            "model_version": encoders.model_version,
            "batches": dg.MetadataValue.md(markdown_table(rows)),
            "products_per_second": round(
                sum(r["products"] for r in rows) / max(sum(r["seconds"] for r in rows), 1e-9), 1
            ),
        }
    )
