"""Embeddings: image, text and fused vectors per catalogue batch, computed with ONNX Runtime."""

import json
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd

from mm_pipeline.defs.model.assets import MODEL_POOL, onnx_model
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.inference.encoders import (
    OnnxEncoders,
    ParityError,
    VariantChoice,
    execution_providers,
    resolve_variant,
    write_embeddings,
)
from mm_pipeline.prep.images import open_tensor_store
from mm_pipeline.publish.vectors import BatchVectorReport, check_batch_vectors
from mm_pipeline.storage import atomic_paths, pin


def checked_encoders(onnx_dir: Path, settings: PipelineSettings) -> tuple[OnnxEncoders, VariantChoice]:
    """ONNX sessions of the current export in the variant ``MM_ONNX_VARIANT`` resolves to (only one that passed
    parity; ``auto``: the fastest on this CPU), on the GPU when ``MM_DEVICE`` allows it and onnxruntime-gpu is
    installed, and that choice. Raises ``dg.Failure`` when no variant passed or the setting is unknown."""
    onnx_dir = pin(onnx_dir)  # parity report and model files of one export version
    providers = execution_providers(settings.device)
    try:
        choice = resolve_variant(onnx_dir, settings.onnx_variant, settings.workers, providers)
    except (ParityError, ValueError) as exc:
        raise dg.Failure(str(exc)) from None
    encoders = OnnxEncoders(onnx_dir, choice.variant, threads=settings.workers, device=settings.device)
    return encoders, choice


@dg.asset(
    partitions_def=catalogue_batches,
    deps=[onnx_model, "cleaned_text", "image_tensors"],
    group_name="embeddings",
    kinds={"onnx", "parquet"},
    pool=MODEL_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=dg.AutomationCondition.eager(),
    description="Per product: unit-length image, text and lexical vectors and the fused vector (their "
    "concatenation weighted by the fusion weights chosen at fine-tuning, unit length), "
    "keyed by nm, with the model version. A backfill embeds its whole range of batches in one run, loading "
    "the ONNX sessions once; its batches' files change together, only once every batch succeeded.",
)
def embeddings(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    layout = settings.layout
    encoders, choice = checked_encoders(layout.onnx_dir, settings)
    context.log.info(f"ONNX variant {choice.variant} (MM_ONNX_VARIANT={choice.wanted}): {choice.reason}")
    if choice.timings:
        context.log.info(f"variant timings: {choice.as_metadata()['products_per_s']} products/s")
    rows = []
    batches = context.partition_keys
    # every batch is written to a temporary file; the files replace the old ones only when all succeeded, just
    # before the run records a materialization for each batch, so a failed batch leaves every file as it was
    with atomic_paths([layout.embeddings(b) for b in batches]) as staged:
        for batch, target in zip(batches, staged, strict=True):
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
                target,
                progress=log_progress,
            )
            rows.append(
                {
                    "batch": batch,
                    "path": str(layout.embeddings(batch)),
                    "products": stats.count,
                    "seconds": round(stats.seconds, 2),
                    "disk_bytes": stats.bytes_on_disk,
                    "mostly_unknown_texts": stats.mostly_unknown_texts,
                }
            )
    return dg.MaterializeResult(
        metadata={
            "count": sum(r["products"] for r in rows),
            # texts mostly of tokens the BPE does not know: fused without the text channel (README)
            "mostly_unknown_texts": sum(r["mostly_unknown_texts"] for r in rows),
            "dims": dg.MetadataValue.json(stats.dims),
            "onnx_variant": encoders.variant,
            "onnx_variant_choice": dg.MetadataValue.json(choice.as_metadata()),
            "model_version": encoders.model_version,
            "batches": dg.MetadataValue.md(markdown_table(rows)),
            "products_per_second": round(
                sum(r["products"] for r in rows) / max(sum(r["seconds"] for r in rows), 1e-9), 1
            ),
        }
    )


def batch_vector_report(settings: PipelineSettings, batch: str) -> BatchVectorReport:
    """Validate one batch's embeddings against its accepted products and the current ONNX export."""
    layout = settings.layout
    accepted = pd.read_parquet(pin(layout.raw_dir(batch)) / "accepted.parquet", columns=["nm"])["nm"]
    manifest = json.loads((pin(layout.onnx_dir) / "manifest.json").read_text())
    return check_batch_vectors(batch, layout.embeddings(batch), accepted.to_numpy(), manifest)


def _report_metadata(report: BatchVectorReport) -> dict:
    return {
        "batch": report.batch,
        "rows": report.rows,
        "dims": dg.MetadataValue.json(report.dims),
        "model_versions": ", ".join(report.model_versions),
        "max_norm_error": dg.MetadataValue.json({k: round(v, 6) for k, v in report.max_norm_error.items()}),
        "verdict": report.message,
    }


def _target(instance: dg.DagsterInstance, batch: str):
    """The materialization of ``batch`` a range run's per-batch evaluation judged (its latest one)."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=embeddings.key, asset_partitions=[batch]), limit=1
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=records[0].run_id, storage_id=records[0].storage_id, timestamp=records[0].timestamp
    )


BATCH_CHECK = "batch_vectors"

with warnings.catch_warnings():  # partitioned asset checks are a preview feature of dagster 1.13
    warnings.simplefilter("ignore", dg.PreviewWarning)

    @dg.asset_check(
        asset=embeddings,
        name=BATCH_CHECK,
        blocking=True,
        partitions_def=catalogue_batches,
        description="Per batch: vectors finite, of the documented widths and norms (every column: image, text, "
        "fused, lexical when present), exactly one row per accepted product, made by the current ONNX export.",
    )
    def batch_vectors(
        context: dg.AssetCheckExecutionContext, settings: PipelineSettings
    ) -> dg.AssetCheckResult:
        if context.has_partition_key:
            report = batch_vector_report(settings, context.partition_key)
            if not report.passed:
                context.log.error(report.message)
            return dg.AssetCheckResult(
                passed=report.passed, metadata=_report_metadata(report), description=report.message
            )
        # a single-run backfill checks its whole range in one step; dagster 1.13 records that step's result
        # without a partition, so each batch's verdict is recorded for its own partition here
        reports = [batch_vector_report(settings, batch) for batch in context.partition_keys]
        for report in reports:
            if not report.passed:
                context.log.error(report.message)
            context.op_execution_context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=embeddings.key,
                    check_name=BATCH_CHECK,
                    passed=report.passed,
                    metadata=_report_metadata(report),
                    target_materialization_data=_target(context.instance, report.batch),
                    description=report.message,
                    blocking=True,
                    partition=report.batch,
                )
            )
        failed = [r for r in reports if not r.passed]
        return dg.AssetCheckResult(
            passed=not failed,
            metadata={
                "batches": len(reports),
                "failed": ", ".join(r.batch for r in failed) or "none",
                "verdict": "; ".join(r.message for r in failed) or "every batch valid",
            },
            description="; ".join(r.message for r in failed) or None,
        )
