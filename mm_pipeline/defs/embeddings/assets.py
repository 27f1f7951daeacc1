"""Embeddings: image, text, lexical and fused vectors per catalogue batch, computed by the ONNX export
(ONNX Runtime, or OpenVINO for the ``bf16`` and ``int8-static`` variants)."""

import warnings

import dagster as dg

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import MODEL_POOL, PipelineSettings
from mm_pipeline.defs.serving import checked_encoders
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.inference.batches import ImageSizeError, embed_batches
from mm_pipeline.publish.catalogue import check_embedded_batch
from mm_pipeline.publish.gates import VERDICT
from mm_pipeline.publish.vectors import BatchVectorReport


@dg.asset(
    partitions_def=catalogue_batches,
    deps=["onnx_model", "cleaned_text", "image_tensors"],
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
    encoders, choice = checked_encoders(settings)
    context.log.info(f"ONNX variant {choice.variant} (MM_ONNX_VARIANT={choice.wanted}): {choice.reason}")
    if choice.timings:
        context.log.info(f"variant timings: {choice.as_metadata()['products_per_s']} products/s")

    def log_progress(batch: str, done: int, total: int) -> None:
        context.log.info(f"{batch}: embedded {done}/{total}")

    # the files change only once every batch succeeded, just before the run records a materialization for
    # each batch, so a failed batch leaves every file as it was
    try:
        embedded = embed_batches(settings.layout, encoders, context.partition_keys, log_progress)
    except ImageSizeError as exc:
        raise dg.Failure(str(exc)) from None
    rows = [
        {
            "batch": e.batch,
            "path": str(e.path),
            "products": e.stats.count,
            "seconds": round(e.stats.seconds, 2),
            "disk_bytes": e.stats.bytes_on_disk,
            "mostly_unknown_texts": e.stats.mostly_unknown_texts,
        }
        for e in embedded
    ]
    products = sum(r["products"] for r in rows)
    return dg.MaterializeResult(
        metadata={
            "count": products,
            # texts mostly of tokens the BPE does not know: fused without the text channel (README)
            "mostly_unknown_texts": sum(r["mostly_unknown_texts"] for r in rows),
            "dims": dg.MetadataValue.json(embedded[-1].stats.dims),
            "onnx_variant": encoders.variant,
            "onnx_variant_choice": dg.MetadataValue.json(choice.as_metadata()),
            "model_version": encoders.model_version,
            "batches": dg.MetadataValue.md(markdown_table(rows)),
            "products_per_second": round(products / max(sum(r["seconds"] for r in rows), 1e-9), 1),
        }
    )


def _report_metadata(report: BatchVectorReport) -> dict:
    return {
        "batch": report.batch,
        "rows": report.rows,
        "dims": dg.MetadataValue.json(report.dims),
        "model_versions": ", ".join(report.model_versions),
        "max_norm_error": dg.MetadataValue.json({k: round(v, 6) for k, v in report.max_norm_error.items()}),
        VERDICT: report.message,
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
            report = check_embedded_batch(settings.layout, context.partition_key)
            if not report.passed:
                context.log.error(report.message)
            return dg.AssetCheckResult(
                passed=report.passed, metadata=_report_metadata(report), description=report.message
            )
        # a single-run backfill checks its whole range in one step; dagster 1.13 records that step's result
        # without a partition, so each batch's verdict is recorded for its own partition here
        reports = [check_embedded_batch(settings.layout, batch) for batch in context.partition_keys]
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
                VERDICT: "; ".join(r.message for r in failed) or "every batch valid",
            },
            description="; ".join(r.message for r in failed) or None,
        )
