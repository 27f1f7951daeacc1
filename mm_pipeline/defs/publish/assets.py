"""Publishing: the served catalogue's fused vectors as a new version, only once every gate passed."""

import dagster as dg

from mm_pipeline.defs.automation.gating import gated, gates_of, metric_record, read_gates
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.defs.serving import one_row_per_nm_check, served_batches
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.evaluation.duplicate_pairs import TASK as DUPLICATES
from mm_pipeline.evaluation.labels import TASKS
from mm_pipeline.publish.catalogue import (
    RepeatedProductsError,
    publish_catalogue,
    read_published_rows,
    read_served_vectors,
)
from mm_pipeline.publish.gates import VERDICT, GateReading, refusal

PUBLISH_GROUP = "publish"
METRIC_FIELDS = ("status", "fused_f1", "base_fused_f1", "fused_f1_minus_base")  # in the publish manifest
METRICS = [f"metric_{task}" for task in [*(t.name for t in TASKS), DUPLICATES]]


@dg.asset(
    group_name=PUBLISH_GROUP,
    automation_condition=gated(dg.AutomationCondition.eager()),
    deps=[*METRICS, "embeddings"],
    kinds={"parquet"},
    description="What consumers read: fused vectors + nm + model version of every embedded batch in one file, "
    "with a manifest per version. Publishes only when every gate (each metric's, each batch's embeddings "
    "check) passed on its asset's latest materialization, made after its inputs' latest ones, however it is "
    "launched, every batch is embedded by "
    "the current model and every nm has one row; otherwise it fails naming the gates, stale batches or "
    "repeated products and the previous version stays in place.",
)
def published_embeddings(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    layout = settings.layout
    instance = context.instance
    try:
        batches = list(served_batches(settings, instance))
    except dg.Failure as exc:
        raise dg.Failure(f"not publishing: {exc.description}", metadata=exc.metadata) from None
    gates = gates_of(context.assets_def, context.asset_key)
    readings = read_gates(instance, gates, batches)
    refused = refusal(readings)
    if refused:
        raise dg.Failure(description=refused, metadata={"gates": dg.MetadataValue.md(gates_table(readings))})
    table = read_served_vectors(layout, batches)
    reread = read_gates(instance, gates, batches)
    if [(r.latest, r.newest_input) for r in reread] != [(r.latest, r.newest_input) for r in readings]:
        raise dg.Failure(
            "not publishing: an input was re-materialized while publishing; the next run retries"
        )
    records = [
        metric_record(instance, dg.AssetKey.from_user_string(asset), METRIC_FIELDS)
        for asset in sorted({gate.asset for gate in gates if not gate.per_partition})
    ]
    metrics = [None if record is None else record.as_dict() for record in records]
    try:
        published = publish_catalogue(
            layout, table, batches, context.run_id, metrics, [r.record() for r in readings]
        )
    except RepeatedProductsError as exc:
        raise dg.Failure(str(exc)) from None
    version = published.version
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(version.path)),
            "version": version.version,
            "pinned_path": dg.MetadataValue.path(str(layout.published_version(version.version))),
            "manifest": dg.MetadataValue.path(str(layout.published_manifest)),
            "products": version.manifest["products"],
            "batches": len(version.manifest["batches"]),
            "model_versions": ", ".join(version.manifest["model_versions"]),
            "gates": dg.MetadataValue.md(gates_table(readings)),
            "changes": dg.MetadataValue.json(version.manifest["changes"]),
            "versions_kept": dg.MetadataValue.md(markdown_table(published.kept_rows())),
        }
    )


published_one_row_per_nm = one_row_per_nm_check(
    published_embeddings,
    read_published_rows,
    "The published table holds exactly one row per nm (a repeated product names its batches).",
)


def gates_table(readings: list[GateReading]) -> str:
    rows = [
        {
            "gate": r.check,
            "asset": r.asset,
            "batch": r.partition or "",
            "status": r.status,
            VERDICT: r.verdict,
        }
        for r in readings
    ]
    return markdown_table(rows)
