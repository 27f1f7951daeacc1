"""Jobs per stage, the sensor that turns new batch files into partitions, and the nightly refresh."""

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
    """Register every new parquet file in the incoming folder as a partition and ingest it."""
    known = set(context.instance.get_dynamic_partitions(catalogue_batches.name))
    new = [name for name in settings.batch_names() if name not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=name, run_key=name) for name in new],
        dynamic_partitions_requests=[catalogue_batches.build_add_request(new)] if new else [],
    )
