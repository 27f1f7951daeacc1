"""Jobs per stage, the sensor that turns new batch files into partitions (and retires vanished ones), and the
nightly refresh."""

import functools
import json

import dagster as dg

from mm_pipeline.catalog.contract import batch_signature, nm_values
from mm_pipeline.catalog.lifecycle import batch_changes
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


evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.groups("evaluation", "publish"),
    description="Proxy metrics with their gates, the similarity index and duplicates, then publishing.",
)


@dg.sensor(
    jobs=[ingest_job, evaluation_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_batch_files(context: dg.SensorEvaluationContext, settings: PipelineSettings) -> dg.SensorResult:
    """Register every new parquet file in the incoming folder as a partition and ingest it; re-ingest a
    registered batch whose file was replaced (size or modification time changed since the last tick); retire
    a registered batch whose file vanished or was renamed (``mm_pipeline.catalog.lifecycle``): its partition
    is removed, the retirement logged, and the served catalogue (metrics, index, published table) refreshed."""
    known = set(context.instance.get_dynamic_partitions(catalogue_batches.name))
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    names, refused = settings.incoming_batches()
    for problem in refused:  # a name Dagster or --partition-range cannot use: never registered
        context.log.warning(f"not registered: {problem}")
    current = {name: batch_signature(settings.batch_file(name)) for name in names}
    products = functools.cache(lambda batch: batch_products(settings, batch))
    changes = batch_changes(known, current, seen, products)
    for line in changes.retirement_lines(products):
        context.log.warning(line)
    run_requests = [
        dg.RunRequest(job_name=ingest_job.name, partition_key=name, run_key=f"{name}@{current[name]}")
        for name in changes.new + changes.changed
    ]
    if changes.vanished and any(
        context.instance.get_latest_materialization_event(dg.AssetKey(a))
        for a in ("similarity_index", "published_embeddings")
    ):
        retired = ",".join(f"{b}@{seen.get(b, '')}" for b in changes.vanished)
        run_requests.append(dg.RunRequest(job_name=evaluation_job.name, run_key=f"retired:{retired}"))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[
            *([catalogue_batches.build_add_request(changes.new)] if changes.new else []),
            *([catalogue_batches.build_delete_request(changes.vanished)] if changes.vanished else []),
        ],
        cursor=json.dumps(current, sort_keys=True),
    )


def batch_products(settings: PipelineSettings, batch: str) -> set[int]:
    """nm values of a batch: its accepted products once ingested, else its file's; empty when unreadable."""
    accepted = settings.layout.raw_accepted(batch)
    return {
        nm
        for nm in nm_values(accepted if accepted.exists() else settings.batch_file(batch))
        if nm is not None
    }


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
