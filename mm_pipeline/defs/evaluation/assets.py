"""Proxy metrics: the base model's eval vectors, one asset per task from one spec list, each with a gate."""

import functools

import dagster as dg
from pydantic import field_validator

from mm_pipeline.defs.resources import PipelineSettings, materialized_batches
from mm_pipeline.defs.serving import served_batch_files
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.evaluation.eval_set import UnservedProductsError, load_eval_set, write_base_embeddings
from mm_pipeline.evaluation.labels import TASKS
from mm_pipeline.evaluation.summary import read_summary
from mm_pipeline.evaluation.tasks import NOISE_Z, EvalSet, evaluate_task, judge, save_metric
from mm_pipeline.publish.gates import VERDICT

EVALUATION_GROUP = "evaluation"
# every evaluation asset follows its inputs as soon as they change
evaluation_asset = functools.partial(
    dg.asset, group_name=EVALUATION_GROUP, automation_condition=dg.AutomationCondition.eager()
)


DEFAULT_FLOORS = {
    "category": 0.5,
    "sub_category": 0.3,
    "price_range": 0.2,
    "gender": 0.6,
    "age_group": 0.6,
    # 5% positives, half of them lingerie that looks like clothing: random compact weights score 0.29 on the
    # sample catalogue, chance ~0.1; the drop-versus-base check is what guards this task
    "isadult": 0.3,
    "duplicates": 0.2,
}


class MetricGates(dg.ConfigurableResource):
    """Floors for the fused-vector F1 of each task and the allowed drop of fine-tuned versus base.

    Defaults are deliberately modest floors that a working model clears on the sample catalogue; raise them
    for production catalogues.
    """

    # the floors given are merged over DEFAULT_FLOORS: setting one task's floor in the launchpad keeps the others
    # (replacing the whole dict left them at 0); 0.0 removes a floor
    min_fused_f1: dict[str, float] = DEFAULT_FLOORS
    max_drop_vs_base: float = 0.05
    # shortfalls within noise_z bootstrap standard errors of the eval split pass; 0 makes thresholds exact
    noise_z: float = NOISE_Z

    @field_validator("min_fused_f1")
    @classmethod
    def _over_the_defaults(cls, floors: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(floors) - set(DEFAULT_FLOORS))
        if unknown:
            raise ValueError(f"min_fused_f1: no task named {unknown}; the tasks are {sorted(DEFAULT_FLOORS)}")
        return {**DEFAULT_FLOORS, **floors}


@evaluation_asset(
    deps=["base_model", "cleaned_text", "image_tensors"],
    kinds={"pytorch", "numpy"},
    description="Vectors of the base model (before fine-tuning) for eval-split products: the reference row "
    "of every metric table.",
)
def base_model_embeddings(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    batches = materialized_batches(settings, context.instance)
    count = write_base_embeddings(settings.layout, batches, settings.eval_fraction)
    path = dg.MetadataValue.path(str(settings.layout.base_embeddings_dir))
    return dg.MaterializeResult(metadata={"path": path, "count": count})


def eval_set(settings: PipelineSettings, instance: dg.DagsterInstance) -> EvalSet:
    """The eval products of the served batches with everything scored on them
    (:func:`mm_pipeline.evaluation.eval_set.load_eval_set`); ``dg.Failure`` naming batches not embedded by
    the current model, or products the base vectors hold that no served batch has."""
    try:
        return load_eval_set(settings.layout, served_batch_files(settings, instance))
    except UnservedProductsError as exc:
        raise dg.Failure(str(exc)) from None


def build_metric_asset(
    task_name: str, description: str
) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    @evaluation_asset(
        name=f"metric_{task_name}",
        deps=["embeddings", base_model_embeddings],
        kinds={"scikitlearn"},
        description=f"Proxy task «{task_name}»: {description} Logistic regression and MLP probes, 5-fold "
        "stratified CV on the eval split, text/image/lexical/fused/PCA features, the base model's fused vector "
        "and references that learn nothing (TF-IDF, 24×24 pixels, both); neighbour precision@5/10 of every "
        "vector set.",
    )
    def metric(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
        result = evaluate_task(task_name, eval_set(settings, context.instance))
        summary = result.summary()
        save_metric(settings.layout, task_name, summary, result.table, result.neighbours)
        context.log.info(f"{task_name}: {summary.as_dict()}")
        metadata = {
            "status": result.status,
            "labelled_products": summary.labelled or 0,
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

    return metric, metric_gate(
        metric, task_name, f"Fused F1 of «{task_name}» above its floor and not worse than the base model."
    )


def metric_gate(asset: dg.AssetsDefinition, task_name: str, description: str) -> dg.AssetChecksDefinition:
    """The blocking gate of a metric asset: its stored summary against the task's floor and the allowed drop
    versus the base model (:func:`mm_pipeline.evaluation.tasks.judge`)."""

    @dg.asset_check(asset=asset, name=f"{task_name}_gate", blocking=True, description=description)
    def gate(
        context: dg.AssetCheckExecutionContext, settings: PipelineSettings, gates: MetricGates
    ) -> dg.AssetCheckResult:
        summary = read_summary(settings.layout, task_name)
        floor = gates.min_fused_f1[task_name]
        verdict = judge(summary, floor, gates.max_drop_vs_base, gates.noise_z)
        if not verdict.passed:  # in the run's log too, not only in the check's metadata
            context.log.error(f"{task_name}_gate failed: {verdict.text}")
        return dg.AssetCheckResult(
            passed=verdict.passed,
            description=verdict.text,
            metadata={
                "floor": floor,
                "max_drop_vs_base": gates.max_drop_vs_base,
                "noise_z": gates.noise_z,
                "status": summary.status,
                VERDICT: verdict.text,
            },
        )

    return gate


METRIC_ASSETS = [build_metric_asset(task.name, task.description) for task in TASKS]
metric_assets = [asset for asset, _ in METRIC_ASSETS]
metric_gates = [gate for _, gate in METRIC_ASSETS]
