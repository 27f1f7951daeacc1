"""Ingest: validated raw products, cleaned text and image tensors, one partition per catalogue batch."""

import time
from pathlib import Path

import dagster as dg

from mm_pipeline.catalog.contract import BatchFileError, earlier_nm_owners, validate_batch
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.model.clip import context_length
from mm_pipeline.prep.images import write_tensor_store
from mm_pipeline.prep.text import TEXT_PARTS, clean_products, foreign_script_counts, length_stats
from mm_pipeline.storage import atomic_dir, write_parquet

INGEST_GROUP = "ingest"


@dg.asset(
    partitions_def=catalogue_batches,
    group_name=INGEST_GROUP,
    kinds={"parquet"},
    description="Accepted rows of a catalogue batch (typed, image resolved) and rejected rows with a reason.",
)
def raw_products(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    batch = context.partition_key
    batch_file = settings.batch_file(batch)
    incoming = [Path(settings.incoming_dir) / f"{name}.parquet" for name in settings.batch_names()]
    try:
        result = validate_batch(
            batch_file,
            settings.images_dir,
            nm_owners=earlier_nm_owners(
                incoming, batch_file, settings.images_dir, max_image_pixels=settings.max_image_pixels
            ),
            max_image_pixels=settings.max_image_pixels,
        )
    except BatchFileError as exc:
        raise dg.Failure(
            description=str(exc), metadata={"file": str(exc.path), "problem": exc.problem}
        ) from None
    layout = settings.layout
    with atomic_dir(layout.raw_dir(batch)) as folder:
        write_parquet(result.accepted, folder / layout.raw_accepted(batch).name)
        write_parquet(result.rejected, folder / layout.raw_rejected(batch).name)
    accepted_path, rejected_path = layout.raw_accepted(batch), layout.raw_rejected(batch)
    context.log.info(
        f"{batch}: {len(result.accepted)} accepted, {len(result.rejected)} rejected of {result.n_input}"
    )
    for line in result.rejection_lines(limit=20):
        context.log.warning(line)
    reasons = result.reject_counts()
    return dg.MaterializeResult(
        metadata={
            "source_file": dg.MetadataValue.path(str(batch_file)),
            "accepted_path": dg.MetadataValue.path(str(accepted_path)),
            "rejected_path": dg.MetadataValue.path(str(rejected_path)),
            "rows_input": result.n_input,
            "rows_accepted": len(result.accepted),
            "rows_rejected": len(result.rejected),
            "rows_with_data_issues": int((result.accepted["data_issues"] != "").sum()),
            "missing_columns_unknown": ", ".join(result.missing_columns) or "none",
            "file_notes": "; ".join(result.file_notes) or "none",
            "reject_reasons": dg.MetadataValue.md(
                "\n".join(["| reason | rows |", "|---|---|", *(f"| {k} | {v} |" for k, v in reasons.items())])
                if reasons
                else "no rejected rows"
            ),
            "rejected_preview": dg.MetadataValue.md(
                result.rejected[["nm", "reject_reason"]].head(20).to_markdown(index=False)
                if len(result.rejected)
                else "none"
            ),
        }
    )


@dg.asset(
    partitions_def=catalogue_batches,
    deps=[raw_products],
    group_name=INGEST_GROUP,
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"parquet"},
    description="HTML/emoji/control characters stripped, Unicode normalized; title, brand and description "
    "kept separately and composed into `text`, the input of the text tower.",
)
def cleaned_text(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    import pandas as pd

    batch = context.partition_key
    layout = settings.layout
    products = pd.read_parquet(layout.raw_accepted(batch))
    cleaned = clean_products(products)
    path = write_parquet(cleaned, layout.cleaned_text(batch))
    context = context_length(settings.ruclip_dir)
    stats = length_stats(cleaned["text"], context_tokens=context)
    scripts = foreign_script_counts(cleaned["text"])
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "rows": len(cleaned),
            "parts": ", ".join(TEXT_PARTS),
            "model_context_tokens": context,
            **{f"text_{k}": v for k, v in stats.items()},
            "sample": dg.MetadataValue.md(cleaned[["nm", "text"]].head(5).to_markdown(index=False)),
            # noted in data_issues; embeddings counts the texts the model's tokenizer really finds unknown
            "texts_mostly_other_script": sum(scripts.values()),
            "other_scripts": dg.MetadataValue.json(scripts),
        }
    )


@dg.asset(
    partitions_def=catalogue_batches,
    deps=[raw_products],
    group_name=INGEST_GROUP,
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"numpy"},
    description="Decoded RGB images, EXIF-rotated, letterboxed to the model resolution, uint8 "
    "[N, size, size, 3] in a memory-mappable .npy, rows in the order of the accepted products.",
)
def image_tensors(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    import pandas as pd

    batch = context.partition_key
    layout = settings.layout
    image_files = pd.read_parquet(layout.raw_accepted(batch), columns=["image_file"])["image_file"].tolist()
    started = time.perf_counter()

    def log_progress(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - started, 1e-9)
        context.log.info(f"{batch}: {done}/{total} images ({rate:.0f}/s)")

    stats = write_tensor_store(
        image_files,
        layout.image_tensors(batch),
        settings.image_size,
        workers=settings.workers,
        max_pixels=settings.max_image_pixels,
        progress=log_progress,
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(layout.image_tensors(batch))),
            "count": stats.count,
            "resolution": stats.size,
            "disk_bytes": stats.bytes_on_disk,
            "seconds": round(stats.seconds, 2),
            "images_per_second": round(stats.images_per_second, 1),
        }
    )
