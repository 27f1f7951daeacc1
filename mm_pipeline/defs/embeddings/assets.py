"""Embeddings: image, text and fused vectors per catalogue batch, computed with ONNX Runtime."""

import json

import dagster as dg
import pandas as pd

from mm_pipeline.defs.model.assets import MODEL_POOL, onnx_model
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
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
    description="Per product: L2-normalized image and text vectors and the fused vector (their concatenation), "
    "keyed by nm, with the model version.",
)
def embeddings(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    batch = context.partition_key
    layout = settings.layout
    parity = json.loads((layout.onnx_dir / "parity.json").read_text())
    variant = choose_variant(settings.onnx_variant, parity["passed_variants"])
    encoders = OnnxEncoders(layout.onnx_dir, variant, threads=settings.workers)
    products = pd.read_parquet(layout.cleaned_text(batch), columns=["nm", "text"])
    store = open_tensor_store(layout.image_tensors(batch))
    if store.shape[1] != encoders.image_size:
        raise dg.Failure(f"{batch}: image tensors are {store.shape[1]}px, the model wants {encoders.image_size}px")

    def log_progress(done: int, total: int) -> None:
        context.log.info(f"{batch}: embedded {done}/{total}")

    stats = write_embeddings(
        encoders, products["nm"].to_numpy(), products["text"].tolist(), lambda s, e: store[s:e],
        layout.embeddings(batch), progress=log_progress,
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(layout.embeddings(batch))),
            "count": stats.count,
            "dims": dg.MetadataValue.json(stats.dims),
            "onnx_variant": variant,
            "model_version": encoders.model_version,
            "products_per_second": round(stats.products_per_second, 1),
            "disk_bytes": stats.bytes_on_disk,
        }
    )
