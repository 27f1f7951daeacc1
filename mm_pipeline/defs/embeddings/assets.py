"""Embeddings: image, text and fused vectors per catalogue batch, computed with ONNX Runtime."""

import json

import dagster as dg
import pandas as pd

from mm_pipeline.defs.model.assets import MODEL_POOL, onnx_model
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.inference.encoders import OnnxEncoders, write_embeddings
from mm_pipeline.prep.images import open_tensor_store


def choose_variant(wanted: str, passed: list[str]) -> str:
    """The configured variant if it passed parity, else fp32 if that passed; never an unchecked one."""
    for variant in (wanted, "fp32"):
        if variant in passed:
            return variant
    raise dg.Failure(f"no ONNX variant passed onnx_parity (passed: {passed or 'none'}); re-export the model")


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
    parity = json.loads((layout.onnx_dir / "parity.json").read_text())
    variant = choose_variant(settings.onnx_variant, parity["passed_variants"])
    encoders = OnnxEncoders(layout.onnx_dir, variant, threads=settings.workers)
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
            "onnx_variant": variant,
            "model_version": encoders.model_version,
            "batches": dg.MetadataValue.md(markdown_table(rows)),
            "products_per_second": round(
                sum(r["products"] for r in rows) / max(sum(r["seconds"] for r in rows), 1e-9), 1
            ),
        }
    )
