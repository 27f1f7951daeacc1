"""Jobs per stage, the sensor that turns new batch files into partitions, and the nightly refresh."""

import json
from pathlib import Path

import dagster as dg

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("raw_products", "cleaned_text", "image_tensors"),
    partitions_def=catalogue_batches,
    description="Validate, clean and decode one catalogue batch.",
)
model_job = dg.define_asset_job(
    "model_job",
    selection=dg.AssetSelection.assets("base_model", "fine_tuned_model", "onnx_model"),
    description="Build/load the base ruCLIP, fine-tune it on all batches, export and check ONNX.",
)
embeddings_job = dg.define_asset_job(
    "embeddings_job",
    selection=dg.AssetSelection.assets("embeddings"),
    partitions_def=catalogue_batches,
    description="Embed one catalogue batch with the checked ONNX model.",
)


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def new_batch_files(context: dg.SensorEvaluationContext, settings: PipelineSettings) -> dg.SensorResult:
    """Register every new parquet file in the incoming folder as a partition and ingest it; re-ingest a
    registered batch whose file was replaced (size or modification time changed since the last tick)."""
    known = set(context.instance.get_dynamic_partitions(catalogue_batches.name))
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = {name: file_signature(settings.batch_file(name)) for name in settings.batch_names()}
    new = [name for name in current if name not in known]
    # a partition registered before this cursor existed counts as up to date, not as changed
    changed = [name for name in current if name in known and seen.get(name, current[name]) != current[name]]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=name, run_key=f"{name}@{current[name]}") for name in new + changed
        ],
        dynamic_partitions_requests=[catalogue_batches.build_add_request(new)] if new else [],
        cursor=json.dumps(current, sort_keys=True),
    )


def file_signature(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.groups("evaluation", "publish"),
    description="Proxy metrics with their gates, the similarity index and duplicates, then publishing.",
)


@dg.schedule(
    job=model_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/Moscow",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_refresh(context: dg.ScheduleEvaluationContext):
    """Re-train when batches arrived or changed since the last fine-tuning.

    Embeddings, metrics and publishing follow through their eager automation conditions once the new
    ONNX model lands, so one nightly run request refreshes the whole graph in order.
    """
    instance = context.instance
    model = instance.get_latest_materialization_event(dg.AssetKey("fine_tuned_model"))
    data = instance.get_latest_materialization_event(dg.AssetKey("cleaned_text"))
    if data is None:
        return dg.SkipReason("no catalogue batch has been ingested yet")
    if model is not None and model.timestamp >= data.timestamp:
        return dg.SkipReason("no new or changed batches since the last fine-tuning")
    return dg.RunRequest(run_key=f"nightly-{context.scheduled_execution_time:%Y-%m-%d}")


automation = dg.AutomationConditionSensorDefinition(
    "automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
