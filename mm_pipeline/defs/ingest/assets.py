"""Ingest: validated raw products, cleaned text and image tensors, one partition per catalogue batch."""

import functools
import time

import dagster as dg

from mm_pipeline.catalog.contract import BatchFileError
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.model.clip import context_length
from mm_pipeline.prep.ingest import clean_into_store, tensors_into_store, validate_into_store
from mm_pipeline.prep.text import TEXT_PARTS

INGEST_GROUP = "ingest"
batch_asset = functools.partial(dg.asset, partitions_def=catalogue_batches, group_name=INGEST_GROUP)


@batch_asset(
    kinds={"parquet"},
    description="Accepted rows of a catalogue batch (typed, image resolved) and rejected rows with a reason.",
)
def raw_products(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    batch = context.partition_key
    batch_file = settings.batch_file(batch)
    incoming = [settings.batch_file(name) for name in settings.batch_names()]
    try:
        validated = validate_into_store(
            settings.layout, batch, batch_file, incoming, settings.images_dir, settings.max_image_pixels
        )
    except BatchFileError as exc:
        raise dg.Failure(
            description=str(exc), metadata={"file": str(exc.path), "problem": exc.problem}
        ) from None
    result = validated.result
    context.log.info(
        f"{batch}: {len(result.accepted)} accepted, {len(result.rejected)} rejected of {result.n_input}"
    )
    for line in result.rejection_lines(limit=20):
        context.log.warning(line)
    reasons = [{"reason": k, "rows": v} for k, v in result.reject_counts().items()]
    return dg.MaterializeResult(
        metadata={
            "source_file": dg.MetadataValue.path(str(batch_file)),
            "accepted_path": dg.MetadataValue.path(str(settings.layout.raw_accepted(batch))),
            "rejected_path": dg.MetadataValue.path(str(settings.layout.raw_rejected(batch))),
            "rows_input": result.n_input,
            "rows_accepted": len(result.accepted),
            "rows_rejected": len(result.rejected),
            "rows_with_data_issues": validated.rows_with_data_issues,
            "missing_columns_unknown": ", ".join(result.missing_columns) or "none",
            "file_notes": "; ".join(result.file_notes) or "none",
            "reject_reasons": dg.MetadataValue.md(markdown_table(reasons) if reasons else "no rejected rows"),
            "rejected_preview": dg.MetadataValue.md(
                markdown_table(validated.rejected_preview) if validated.rejected_preview else "none"
            ),
        }
    )


# cleaned_text and image_tensors follow their batch's raw_products as soon as it changes
from_raw_products = functools.partial(
    batch_asset, deps=[raw_products], automation_condition=dg.AutomationCondition.eager()
)


@from_raw_products(
    kinds={"parquet"},
    description="HTML/emoji/control characters stripped, Unicode normalized; title, brand and description "
    "kept separately and composed into `text`, the input of the text tower.",
)
def cleaned_text(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    context_tokens = context_length(settings.ruclip_dir, settings.ruclip_name, settings.layout.downloads_dir)
    cleaned = clean_into_store(settings.layout, context.partition_key, context_tokens)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(cleaned.path)),
            "rows": cleaned.rows,
            "parts": ", ".join(TEXT_PARTS),
            "model_context_tokens": context_tokens,
            **{f"text_{k}": v for k, v in cleaned.length_stats.items()},
            "sample": dg.MetadataValue.md(markdown_table(cleaned.sample)),
            # noted in data_issues; embeddings counts the texts the model's tokenizer really finds unknown
            "texts_mostly_other_script": sum(cleaned.other_scripts.values()),
            "other_scripts": dg.MetadataValue.json(cleaned.other_scripts),
        }
    )


@from_raw_products(
    kinds={"numpy"},
    description="Decoded RGB images, EXIF-rotated, letterboxed to the model resolution, uint8 "
    "[N, size, size, 3] in a memory-mappable .npy, rows in the order of the accepted products.",
)
def image_tensors(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    batch = context.partition_key
    started = time.perf_counter()

    def log_progress(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - started, 1e-9)
        context.log.info(f"{batch}: {done}/{total} images ({rate:.0f}/s)")

    stats = tensors_into_store(
        settings.layout,
        batch,
        settings.image_size,
        workers=settings.workers,
        max_pixels=settings.max_image_pixels,
        progress=log_progress,
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(settings.layout.image_tensors(batch))),
            "count": stats.count,
            "resolution": stats.size,
            "disk_bytes": stats.bytes_on_disk,
            "seconds": round(stats.seconds, 2),
            "images_per_second": round(stats.images_per_second, 1),
        }
    )
