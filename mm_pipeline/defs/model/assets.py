"""Model: base ruCLIP (pretrained folder, download, or compact from scratch), fine-tuning, ONNX export."""

import functools
import time

import dagster as dg

from mm_pipeline.defs.resources import MODEL_POOL, PipelineSettings, materialized_batches
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.model.clip import ModelSourceError
from mm_pipeline.model.events import EpochEvent, ResumedEvent, StepEvent, TrainingEvent
from mm_pipeline.model.recipe import NoBatchesError, build_base_model, recipe_for
from mm_pipeline.model.stage import (
    TooFewProductsError,
    check_onnx_parity,
    export_onnx,
    fine_tune_plan,
    plan_fine_tuning,
)

MODEL_GROUP = "model"
REFUSALS = (ModelSourceError, NoBatchesError, TooFewProductsError)  # the core's reasons not to build a model
model_asset = functools.partial(dg.asset, group_name=MODEL_GROUP, pool=MODEL_POOL)


@model_asset(
    deps=["cleaned_text"],
    kinds={"pytorch"},
    description="The starting ruCLIP: a pretrained folder (MM_RUCLIP_DIR), a download (MM_RUCLIP_NAME, online "
    "only), or a compact ruCLIP trained from scratch with a BPE learned on the training split.",
)
def base_model(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    try:
        base = build_base_model(
            settings.layout,
            materialized_batches(settings, context.instance),
            ruclip_dir=settings.ruclip_dir,
            ruclip_name=settings.ruclip_name,
            image_size=settings.image_size,
            eval_fraction=settings.eval_fraction,
            vocab_size=settings.compact_vocab_size,
        )
    except REFUSALS as exc:
        raise dg.Failure(str(exc)) from None
    context.log.info(f"base model: {base.origin}")
    return dg.MaterializeResult(
        metadata={
            "origin": base.origin,
            "path": dg.MetadataValue.path(str(base.path)),
            "model_version": base.model_version,
            "config": dg.MetadataValue.json(base.config),
            "parameters": base.parameters,
        }
    )


@model_asset(
    deps=[base_model, "cleaned_text", "image_tensors"],
    kinds={"pytorch", "wandb"},
    description="Contrastive image↔text fine-tuning on the training split of all batches; keeps the best "
    "epoch by held-out image→text recall and resumes from checkpoints after an interruption.",
)
def fine_tuned_model(
    context: dg.AssetExecutionContext, settings: PipelineSettings, wandb_resource: dg.ResourceParam[dict]
) -> dg.MaterializeResult:
    layout = settings.layout
    recipe = recipe_for(layout, epochs=settings.train_epochs, batch_size=settings.train_batch_size)
    try:
        plan = plan_fine_tuning(
            layout,
            materialized_batches(settings, context.instance),
            recipe,
            settings.eval_fraction,
            threads=settings.workers,
            device=settings.device,
        )
    except REFUSALS as exc:
        raise dg.Failure(str(exc)) from None
    compute = plan.compute
    context.log.info(f"training on {compute.device} in {compute.precision} (MM_DEVICE={settings.device})")
    run = wandb_resource["sdk"].init(
        project="mm_pipeline",
        job_type="fine_tune",
        dir=wandb_resource["dir"],  # WANDB_DIR, default <MM_DATA_DIR>/wandb
        config=plan.tracking_config(),
    )
    started = time.perf_counter()
    try:
        tuned = fine_tune_plan(layout, plan, progress_logger(context, run))
    finally:
        run.finish()
    fusion, lexical_dim = tuned.channels.fusion, tuned.channels.lexical.dim
    selection = tuned.channels.selection
    context.log.info(
        f"lexical channel: {lexical_dim} dims; fusion weights {fusion.weights} chosen on the "
        f"{selection} ({fusion.rows} products)"
    )
    training = tuned.training
    best = training.best
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(tuned.path)),
            "model_version": tuned.model_version,
            "recipe": recipe.name,
            "compute": f"{compute.device} {compute.precision}",
            "train_products": len(plan.train),
            "holdout_products": len(plan.holdout),
            "eval_products_never_trained_on": tuned.eval_products,
            "best_epoch": training.best_epoch,
            "best_val_recall_at_1": best.get("val_recall_at_1"),
            "best_val_recall_at_5": best.get("val_recall_at_5"),
            "chance_recall_at_5": best.get("chance_recall_at_5"),
            "resumed_from": training.resumed_from or "fresh start",
            "seconds": round(time.perf_counter() - started, 1),
            "curve": dg.MetadataValue.md(markdown_table(training.history)),
            "lexical_dim": lexical_dim,
            "fusion_weights": dg.MetadataValue.md(markdown_table(tuned.fusion_rows(), 3)),
            "fusion_chosen_on": f"{selection} ({fusion.rows} products; tasks: "
            f"{', '.join(fusion.tasks) or 'none, equal weights'})",
            "fusion_objective_selection": dg.MetadataValue.float(fusion.score),
        }
    )


def progress_logger(context: dg.AssetExecutionContext, run):
    """``on_progress`` of fine-tuning: every step and epoch to the W&B ``run``, and to the run's log the first
    step of the run and of every epoch, each epoch's last, else at most one step every 10 s."""
    last_log = None

    def on_progress(event: TrainingEvent) -> None:
        nonlocal last_log
        match event:
            case StepEvent():
                run.log(
                    {
                        "epoch": event.epoch,
                        "step": event.global_step,
                        "train/loss": event.loss,
                        "train/lr": event.lr,
                        "train/items_per_s": event.items_per_s,
                    }
                )
                due = last_log is None or time.perf_counter() - last_log > 10
                if due or event.step in (1, event.steps):
                    last_log = time.perf_counter()
                    context.log.info(
                        f"epoch {event.epoch} step {event.step}/{event.steps} loss {event.loss:.4f} "
                        f"lr {event.lr:.2e} {event.items_per_s:.0f} items/s"
                    )
            case EpochEvent():
                run.log(event.validation() | {"epoch": event.epoch})
                context.log.info(
                    f"epoch {event.epoch}: val loss {event.val_loss:.4f} R@1 {event.val_recall_at_1:.3f} "
                    f"R@5 {event.val_recall_at_5:.3f} (chance {event.chance_recall_at_5:.3f}); "
                    f"best epoch {event.best_epoch}"
                )
            case ResumedEvent():
                context.log.info(f"resumed from checkpoint at epoch {event.epoch} step {event.step}")

    return on_progress


@model_asset(
    deps=[fine_tuned_model],
    kinds={"onnx"},
    description="Image and text towers of the fine-tuned model in ONNX (dynamic batch; dynamic sequence length "
    "for text, EOS pooling) plus int8 dynamically quantized variants and an image tower statically quantized "
    "to int8 for OpenVINO, calibrated on training-split photos.",
)
def onnx_model(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    started = time.perf_counter()
    batches = materialized_batches(settings, context.instance)
    export = export_onnx(settings.layout, batches, settings.eval_fraction)
    files = [{"file": k, "bytes": v} for k, v in export.manifest["files"].items()]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(export.path)),
            "model_version": export.manifest["model_version"],
            "calibration_photos": export.manifest["calibration_photos"],
            **{k: export.manifest[k] for k in ("int8_static_error",) if k in export.manifest},
            "files": dg.MetadataValue.md(markdown_table(files)),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


@dg.asset_check(
    asset=onnx_model,
    blocking=True,
    description="ONNX fp32 (cos ≥ 0.9999), int8, int8-static and, where the CPU has hardware bf16, bf16 "
    "(cos ≥ 0.995) "
    "agree with torch on real eval-split products; downstream only uses a variant that passed. Times the "
    "passing variants on this CPU for MM_ONNX_VARIANT=auto.",
)
def onnx_parity(context: dg.AssetCheckExecutionContext, settings: PipelineSettings) -> dg.AssetCheckResult:
    batches = materialized_batches(settings, context.instance)
    checked = check_onnx_parity(settings.layout, batches, settings.eval_fraction, threads=settings.workers)
    report, timing = checked.report, checked.timing
    return dg.AssetCheckResult(
        passed=report.passed,
        metadata={
            "products_checked": checked.products_checked,
            "passed_variants": ", ".join(report.passed_variants) or "none",
            **report.summary(),
            "report": dg.MetadataValue.md(markdown_table(report.rows)),
            # what MM_ONNX_VARIANT=auto reuses on a CPU with the same flags
            "products_per_s": dg.MetadataValue.json(
                {v: round(1 / s, 1) for v, s in timing["seconds"].items()}
            ),
            "timed_on": dg.MetadataValue.json(timing["cpu"]),
        },
    )
