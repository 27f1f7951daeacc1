"""Re-embedding of batches whose vectors are not what serving needs: of another model, missing, or older than
the batch's latest ingest (a failed, cancelled or partial run)."""

import time

import dagster as dg

from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.defs.serving import current_model_version, latest_ingest, stale_batches

# eager automation re-embeds every batch when a new export lands; this sensor takes over what is still stale
# this long after it (a failed or cancelled run, a batch left out of a backfill)
STALE_GRACE_S = 600.0
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    job_name="embeddings_job", minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING
)
def stale_embeddings(context: dg.SensorEvaluationContext, settings: PipelineSettings):
    """Request one re-embedding per stale batch (:func:`~mm_pipeline.defs.serving.stale_batches`), model version
    and ingest of the batch (the run key), once the current export is ``STALE_GRACE_S`` old and no embeddings
    run is in progress; a batch that fails again stays stale, and every consumer refuses naming it."""
    instance = context.instance
    model = instance.get_latest_materialization_event(dg.AssetKey("onnx_model"))
    if model is None or time.time() - model.timestamp < STALE_GRACE_S:
        return dg.SkipReason("no export yet, or eager automation is still re-embedding for the new one")
    busy = [
        run
        for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))
        if run.asset_selection and dg.AssetKey("embeddings") in run.asset_selection
    ]
    if busy:
        return dg.SkipReason(f"embeddings run {busy[0].run_id} in progress")
    try:
        stale = stale_batches(settings, instance)
    except dg.Failure as exc:  # no usable export
        return dg.SkipReason(exc.description)
    if not stale:
        return dg.SkipReason("every batch is embedded by the current model since its latest ingest")
    version = current_model_version(settings)
    for batch, why in sorted(stale.items()):
        context.log.info(f"{batch}: {why}, current model {version}; re-embedding")
    return [
        dg.RunRequest(partition_key=batch, run_key=f"{batch}@{version}#{latest_ingest(instance, batch)}")
        for batch in sorted(stale)
    ]
