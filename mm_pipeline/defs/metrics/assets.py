"""Proxy metrics: one asset per task from one spec list, each with a blocking gate, and publishing."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mm_pipeline.defs.automation.gating import gated, gates_of, materialization_summary, read_gates
from mm_pipeline.defs.catalogue_index import served_batches
from mm_pipeline.defs.resources import PipelineSettings, materialized_batches
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.evaluation.labels import TASKS
from mm_pipeline.evaluation.references import pixel_features_of
from mm_pipeline.evaluation.tasks import NOISE_Z, VECTOR_KINDS, EvalSet, evaluate_task, judge, save_metric
from mm_pipeline.inference.encoders import read_vectors
from mm_pipeline.model.clip import load_folder
from mm_pipeline.model.train import encode_pairs, load_pairs, training_split
from mm_pipeline.publish.gates import refusal
from mm_pipeline.publish.record import list_versions, publish_version
from mm_pipeline.publish.vectors import one_row_per_nm_problem
from mm_pipeline.storage import atomic_dir, pin, save_npy, write_parquet

EVALUATION_GROUP = "evaluation"


class MetricGates(dg.ConfigurableResource):
    """Floors for the fused-vector F1 of each task and the allowed drop of fine-tuned versus base.

    Defaults are deliberately modest floors that a working model clears on the sample catalogue; raise them
    for production catalogues.
    """

    min_fused_f1: dict[str, float] = {
        "category": 0.5,
        "sub_category": 0.3,
        "price_range": 0.2,
        "gender": 0.6,
        "age_group": 0.6,
        # 5% positives, half of them lingerie that looks like clothing: random compact weights score ~0.4,
        # chance ~0.1; the drop-versus-base check is what guards this task
        "isadult": 0.3,
        "duplicates": 0.2,
    }
    max_drop_vs_base: float = 0.05
    # shortfalls within noise_z bootstrap standard errors of the eval split pass; 0 makes thresholds exact
    noise_z: float = NOISE_Z


@dg.asset(
    group_name=EVALUATION_GROUP,
    automation_condition=dg.AutomationCondition.eager(),
    deps=["base_model", "cleaned_text", "image_tensors"],
    kinds={"pytorch", "numpy"},
    description="Vectors of the base model (before fine-tuning) for eval-split products: the reference row "
    "of every metric table.",
)
def base_model_embeddings(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    layout = settings.layout
    model = load_folder(layout.model_dir("base"))
    batches = materialized_batches(settings, context.instance)
    pairs, products = load_pairs(batches, model.tokenizer, layout.token_dir)
    rows = np.flatnonzero(training_split(products, settings.eval_fraction, 0.0)["eval"])
    image, text = encode_pairs(model.clip, pairs.subset(np.isin(np.arange(len(pairs)), rows)))
    target = layout.base_embeddings_dir
    with atomic_dir(target) as folder:
        save_npy(image.numpy(), folder / "image.npy")
        save_npy(text.numpy(), folder / "text.npy")
        write_parquet(products.iloc[rows][["nm"]], folder / "nm.parquet")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(target)), "count": len(rows)})


def load_eval_set(settings: PipelineSettings, instance: dg.DagsterInstance) -> EvalSet:
    """Eval-split products with their fine-tuned vectors (every vector column the embeddings of all batches
    have, as stored), base-model vectors and 24x24 thumbnails read from the image tensor stores.

    Raises ``dg.Failure`` naming the batches not embedded by the current model (:func:`served_batches`)."""
    layout = settings.layout
    served = served_batches(settings, instance)
    batches = [b for b in materialized_batches(settings, instance) if b.name in served]
    products = pd.concat([pd.read_parquet(b.cleaned_text) for b in batches], ignore_index=True)
    schemas = [set(pq.read_schema(layout.embeddings(b.name)).names) for b in batches]
    tuned = {}
    for column in [kind for kind in VECTOR_KINDS if all(kind in names for names in schemas)]:
        parts = [read_vectors(layout.embeddings(b.name), column) for b in batches]
        nm = np.concatenate([p[0] for p in parts])
        tuned[column] = np.concatenate([p[1] for p in parts])
    base_dir = pin(layout.base_embeddings_dir)
    base_nm = pd.read_parquet(base_dir / "nm.parquet")["nm"].to_numpy()
    unserved = np.setdiff1d(base_nm, nm)
    if len(unserved):  # e.g. products of a batch retired since base_model_embeddings ran
        raise dg.Failure(
            f"base_model_embeddings holds {len(unserved)} products no served batch has (e.g. nm {unserved[0]}); "
            "rematerialize base_model_embeddings (evaluation_job does)"
        )
    position = pd.Series(np.arange(len(nm)), index=nm)
    eval_products = products.set_index("nm").loc[base_nm].reset_index()
    rows = position.loc[base_nm].to_numpy()
    return EvalSet.build(
        eval_products,
        {k: v[rows] for k, v in tuned.items()},
        {k: np.load(base_dir / f"{k}.npy") for k in ("image", "text")},
        pixel_features_of(batches, base_nm),
    )


def build_metric_asset(
    task_name: str, description: str
) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    asset_name = f"metric_{task_name}"

    @dg.asset(
        name=asset_name,
        group_name=EVALUATION_GROUP,
        automation_condition=dg.AutomationCondition.eager(),
        deps=["embeddings", base_model_embeddings],
        kinds={"scikitlearn"},
        description=f"Proxy task «{task_name}»: {description} Logistic regression and MLP probes, 5-fold "
        "stratified CV on the eval split, text/image/lexical/fused/PCA features, the base model and references "
        "that learn nothing (TF-IDF, 24×24 pixels, both); neighbour precision@5/10 of every vector set.",
    )
    def metric(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
        result = evaluate_task(task_name, load_eval_set(settings, context.instance))
        layout = settings.layout
        save_metric(layout, task_name, result.summary(), result.table, result.neighbours)
        context.log.info(f"{task_name}: {result.summary()}")
        metadata = {
            "status": result.status,
            "labelled_products": result.extras.get("labelled", 0),
            **{k: dg.MetadataValue.float(float(v)) for k, v in result.headline.items()},
        }
        if result.reason:
            metadata["reason"] = result.reason
        if not result.table.empty:
            metadata["results"] = dg.MetadataValue.md(markdown_table(result.table.to_dict("records"), 3))
            metadata["neighbours"] = dg.MetadataValue.md(
                markdown_table(result.neighbours.to_dict("records"), 3)
            )
        metadata.update({k: v for k, v in result.extras.items() if k != "labelled"})
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset_check(
        asset=metric,
        name=f"{task_name}_gate",
        blocking=True,
        description=f"Fused F1 of «{task_name}» above its floor and not worse than the base model.",
    )
    def gate(settings: PipelineSettings, gates: MetricGates) -> dg.AssetCheckResult:
        return gate_result(task_name, settings, gates)

    return metric, gate


def gate_result(task_name: str, settings: PipelineSettings, gates: MetricGates) -> dg.AssetCheckResult:
    """Judge a task's stored summary against its configured floor and the allowed drop versus base."""
    summary = json.loads(settings.layout.metric_summary(task_name).read_text())
    floor = gates.min_fused_f1.get(task_name, 0.0)
    verdict = judge(summary, floor, gates.max_drop_vs_base, gates.noise_z)
    return dg.AssetCheckResult(
        passed=verdict.passed,
        metadata={
            "floor": floor,
            "max_drop_vs_base": gates.max_drop_vs_base,
            "noise_z": gates.noise_z,
            "status": summary["status"],
            "verdict": "; ".join(verdict.reasons) or "within thresholds",
        },
    )


METRIC_ASSETS = [build_metric_asset(task.name, task.description) for task in TASKS]
metric_assets = [asset for asset, _ in METRIC_ASSETS]
metric_gates = [gate for _, gate in METRIC_ASSETS]


PUBLISH_GROUP = "publish"
METRIC_FIELDS = ("status", "fused_f1", "base_fused_f1", "fused_f1_minus_base")  # in the publish manifest


@dg.asset(
    group_name=PUBLISH_GROUP,
    automation_condition=gated(dg.AutomationCondition.eager()),
    deps=[*metric_assets, "metric_duplicates", "embeddings"],
    kinds={"parquet"},
    description="What consumers read: fused vectors + nm + model version of every embedded batch in one file, "
    "with a manifest per version. Publishes only when every gate (each metric's, each batch's embeddings "
    "check) passed on its asset's latest materialization, however it is launched, every batch is embedded by "
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

    frames = [
        pd.read_parquet(layout.embeddings(b), columns=["nm", "model_version", "fused"]).assign(batch=b)
        for b in batches
    ]
    if [r.latest for r in read_gates(instance, gates, batches)] != [r.latest for r in readings]:
        raise dg.Failure(
            "not publishing: an input was re-materialized while publishing; the next run retries"
        )
    published = pd.concat(frames, ignore_index=True)
    problem = one_row_per_nm_problem(published["nm"], published["batch"])
    if problem:
        raise dg.Failure(f"not publishing: {problem}; retire or fix the batch files")
    onnx_manifest = json.loads((pin(settings.layout.onnx_dir) / "manifest.json").read_text())
    manifest = {
        "run_id": context.run_id,
        "model_versions": sorted(published["model_version"].unique()),
        "onnx_model_version": onnx_manifest["model_version"],
        "products": len(published),
        "batches": [
            {"batch": b, "products": len(f), "model_version": ", ".join(sorted(f["model_version"].unique()))}
            for b, f in zip(batches, frames, strict=True)
        ],
        "metrics": [
            materialization_summary(instance, dg.AssetKey.from_user_string(asset), METRIC_FIELDS)
            for asset in sorted({g["asset"] for g in gates if not g["per_partition"]})
        ],
        "gates": [r.record() for r in readings],
    }
    version = publish_version(layout, published, manifest)
    kept = list_versions(layout)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(version.path)),
            "version": version.version,
            "pinned_path": dg.MetadataValue.path(str(layout.published_version(version.version))),
            "manifest": dg.MetadataValue.path(str(layout.published_manifest)),
            "products": len(published),
            "batches": len(frames),
            "model_versions": ", ".join(manifest["model_versions"]),
            "gates": dg.MetadataValue.md(gates_table(readings)),
            "changes": dg.MetadataValue.json(version.manifest["changes"]),
            "versions_kept": dg.MetadataValue.md(
                markdown_table(
                    [
                        {
                            "version": m["version"],
                            "published_at": m["published_at"],
                            "model_versions": ", ".join(m["model_versions"]),
                            "products": m["products"],
                            "batches": len(m["batches"]),
                        }
                        for m in kept
                    ]
                )
            ),
        }
    )


ONE_ROW_PER_NM = "one_row_per_nm"


def one_row_per_nm_result(table: pd.DataFrame) -> dg.AssetCheckResult:
    """The ``one_row_per_nm`` verdict on a served table with ``nm`` and ``batch`` columns."""
    problem = one_row_per_nm_problem(table["nm"], table["batch"])
    return dg.AssetCheckResult(
        passed=problem is None,
        metadata={
            "rows": len(table),
            "products": int(table["nm"].nunique()),
            "verdict": problem or "one row per nm",
        },
        description=problem,
    )


@dg.asset_check(
    asset=published_embeddings,
    name=ONE_ROW_PER_NM,
    blocking=True,
    description="The published table holds exactly one row per nm (a repeated product names its batches).",
)
def published_one_row_per_nm(settings: PipelineSettings) -> dg.AssetCheckResult:
    return one_row_per_nm_result(
        pd.read_parquet(settings.layout.published_embeddings, columns=["nm", "batch"])
    )


def gates_table(readings: list) -> str:
    return markdown_table(
        [
            {
                "gate": r.check,
                "asset": r.asset,
                "batch": r.partition or "",
                "status": r.status,
                "verdict": r.verdict,
            }
            for r in readings
        ]
    )
