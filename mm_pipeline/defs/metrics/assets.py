"""Proxy metrics: one asset per task from one spec list, each with a blocking gate, and publishing."""

import json

import dagster as dg
import numpy as np
import pandas as pd

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings, materialized_batches
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.evaluation.labels import TASKS
from mm_pipeline.evaluation.tasks import NOISE_Z, EvalSet, evaluate_task, judge, save_metric
from mm_pipeline.inference.encoders import read_vectors
from mm_pipeline.model.clip import load_folder
from mm_pipeline.model.train import encode_pairs, load_pairs, training_split
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
    """Eval-split products with their fine-tuned vectors (from ``embeddings``) and base-model vectors."""
    layout = settings.layout
    batches = [b for b in materialized_batches(settings, instance) if layout.embeddings(b.name).exists()]
    products = pd.concat([pd.read_parquet(b.cleaned_text) for b in batches], ignore_index=True)
    tuned = {}
    for column in ("image", "text"):
        parts = [read_vectors(layout.embeddings(b.name), column) for b in batches]
        nm = np.concatenate([p[0] for p in parts])
        tuned[column] = np.concatenate([p[1] for p in parts])
    base_dir = pin(layout.base_embeddings_dir)
    base_nm = pd.read_parquet(base_dir / "nm.parquet")["nm"].to_numpy()
    position = pd.Series(np.arange(len(nm)), index=nm)
    eval_products = products.set_index("nm").loc[base_nm].reset_index()
    rows = position.loc[base_nm].to_numpy()
    return EvalSet.build(
        eval_products,
        {k: v[rows] for k, v in tuned.items()},
        {k: np.load(base_dir / f"{k}.npy") for k in ("image", "text")},
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
        "stratified CV on the eval split, text/image/fused/PCA features, base-model and TF-IDF references.",
    )
    def metric(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
        result = evaluate_task(task_name, load_eval_set(settings, context.instance))
        layout = settings.layout
        save_metric(layout, task_name, result.summary(), result.table)
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


@dg.asset(
    group_name="publish",
    automation_condition=dg.AutomationCondition.eager(),
    deps=[*metric_assets, "metric_duplicates", "embeddings"],
    kinds={"parquet"},
    description="What consumers read: fused vectors + nm + model version of every batch in one file. Runs only "
    "when every metric gate passed, so a failed gate leaves the previous version in place.",
)
def published_embeddings(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    layout = settings.layout
    frames = []
    for batch in sorted(context.instance.get_dynamic_partitions(catalogue_batches.name)):
        path = layout.embeddings(batch)
        if path.exists():
            frames.append(pd.read_parquet(path, columns=["nm", "model_version", "fused"]).assign(batch=batch))
    published = pd.concat(frames, ignore_index=True)
    target = write_parquet(published, layout.published_dir / "embeddings.parquet")
    versions = sorted(published["model_version"].unique())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "products": len(published),
            "batches": len(frames),
            "model_versions": ", ".join(versions),
        }
    )
