"""Model: base ruCLIP (pretrained folder, download, or compact from scratch), fine-tuning, ONNX export."""

import dataclasses
import json
import time

import dagster as dg
import numpy as np
import torch

from mm_pipeline.defs.resources import PipelineSettings, materialized_batches
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.inference.encoders import PARITY_FILE
from mm_pipeline.model.channels import fit_channels
from mm_pipeline.model.clip import (
    COMPACT_CONFIG,
    ModelSourceError,
    build_clip,
    download,
    load_folder,
    save_folder,
)
from mm_pipeline.model.device import training_compute
from mm_pipeline.model.export import check_parity, export_towers, weights_version, write_parity
from mm_pipeline.model.train import (
    RECIPES,
    fine_tune,
    fingerprint,
    iter_texts,
    load_pairs,
    load_split_columns,
    training_split,
)
from mm_pipeline.prep.tokens import TextTokenizer, train_bpe
from mm_pipeline.storage import atomic_dir, pin

MODEL_GROUP = "model"
MODEL_POOL = "heavy_compute"


def _require_batches(settings: PipelineSettings, context) -> list:
    batches = materialized_batches(settings, context.instance)
    if not batches:
        raise dg.Failure("no catalogue batch has cleaned_text and image_tensors yet; materialize them first")
    return batches


@dg.asset(
    group_name=MODEL_GROUP,
    deps=["cleaned_text"],
    kinds={"pytorch"},
    pool=MODEL_POOL,
    description="The starting ruCLIP: a pretrained folder (MM_RUCLIP_DIR), a download (MM_RUCLIP_NAME, online "
    "only), or a compact ruCLIP trained from scratch with a BPE learned on the training split.",
)
def base_model(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    layout = settings.layout
    target = layout.model_dir("base")
    try:
        if settings.ruclip_dir:
            loaded = load_folder(settings.ruclip_dir)
        elif settings.ruclip_name:
            loaded = download(settings.ruclip_name, layout.store / "downloads")
        else:
            loaded = None
    except ModelSourceError as exc:
        raise dg.Failure(str(exc)) from None
    if loaded is not None:
        if loaded.config["image_resolution"] != settings.image_size:
            raise dg.Failure(
                f"{loaded.origin} expects {loaded.config['image_resolution']}px images but image_tensors are "
                f"{settings.image_size}px; set MM_IMAGE_SIZE={loaded.config['image_resolution']} and rematerialize"
            )
        save_folder(loaded.clip, loaded.config, loaded.bpe_path, target, extra={"origin": loaded.origin})
        origin, config = loaded.origin, loaded.config
    else:
        batches = _require_batches(settings, context)
        split = training_split(
            load_split_columns(batches), settings.eval_fraction, RECIPES["compact"].holdout_fraction
        )
        corpus_texts = int((~split["eval"]).sum())
        with atomic_dir(layout.store / "models" / "bpe") as tmp:
            bpe_path = train_bpe(
                iter_texts(batches, ~split["eval"]), tmp / "bpe.model", settings.compact_vocab_size
            )
            vocab_size = TextTokenizer(bpe_path).vocab_size
            config = {**COMPACT_CONFIG, "vocab_size": vocab_size, "image_resolution": settings.image_size}
            torch.manual_seed(0)
            save_folder(
                build_clip(config),
                config,
                bpe_path,
                target,
                extra={"origin": "compact, trained from scratch", "bpe_corpus_texts": corpus_texts},
            )
        origin = f"compact ruCLIP, trained from scratch (no pretrained weights configured; BPE on {corpus_texts} texts)"
    context.log.info(f"base model: {origin}")
    return dg.MaterializeResult(
        metadata={
            "origin": origin,
            "path": dg.MetadataValue.path(str(target)),
            "model_version": weights_version(target),
            "config": dg.MetadataValue.json(config),
            "parameters": sum(p.numel() for p in load_folder(target).clip.parameters()),
        }
    )


@dg.asset(
    group_name=MODEL_GROUP,
    deps=[base_model, "cleaned_text", "image_tensors"],
    kinds={"pytorch", "wandb"},
    pool=MODEL_POOL,
    description="Contrastive image↔text fine-tuning on the training split of all batches; keeps the best "
    "epoch by held-out image→text recall and resumes from checkpoints after an interruption.",
)
def fine_tuned_model(
    context: dg.AssetExecutionContext, settings: PipelineSettings, wandb_resource: dg.ResourceParam[dict]
) -> dg.MaterializeResult:
    layout = settings.layout
    base = load_folder(layout.model_dir("base"))
    base_origin = json.loads((layout.model_dir("base") / "training.json").read_text())["origin"]
    pretrained = not base_origin.startswith("compact")
    recipe = RECIPES["pretrained" if pretrained else "compact"]
    overrides = {"epochs": settings.train_epochs, "batch_size": settings.train_batch_size}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v})
    batches = _require_batches(settings, context)
    pairs, products = load_pairs(batches, base.tokenizer, settings.layout.token_dir)
    split = training_split(products, settings.eval_fraction, recipe.holdout_fraction)
    train, holdout = pairs.subset(split["train"]), pairs.subset(split["holdout"])
    if len(train) < recipe.batch_size or len(holdout) < 4:
        raise dg.Failure(f"too few products to train: {len(train)} train, {len(holdout)} held out")
    torch.set_num_threads(settings.workers)
    compute = training_compute(settings.device, base.clip, recipe.batch_size)
    context.log.info(f"training on {compute.device} in {compute.precision} (MM_DEVICE={settings.device})")
    job_id = fingerprint(recipe, base.config, train, layout.model_dir("base") / "pytorch_model.bin")
    wandb = wandb_resource["sdk"]
    run = wandb.init(
        project="mm_pipeline",
        job_type="fine_tune",
        dir=wandb_resource["dir"],  # WANDB_DIR, default <MM_DATA_DIR>/wandb
        config={
            "recipe": recipe.__dict__,
            "model": base.config,
            "train": len(train),
            "holdout": len(holdout),
        },
    )
    started, last_log = time.perf_counter(), None

    def on_progress(event: dict) -> None:
        nonlocal last_log
        if event["event"] == "step":
            run.log(
                {
                    "epoch": event["epoch"],
                    "step": event["global_step"],
                    "train/loss": event["loss"],
                    "train/lr": event["lr"],
                    "train/items_per_s": event["items_per_s"],
                }
            )
            # the first step of this run and of every epoch, each epoch's last, else at most every 10 s
            due = last_log is None or time.perf_counter() - last_log > 10
            if due or event["step"] in (1, event["steps"]):
                last_log = time.perf_counter()
                context.log.info(
                    f"epoch {event['epoch']} step {event['step']}/{event['steps']} loss {event['loss']:.4f} "
                    f"lr {event['lr']:.2e} {event['items_per_s']:.0f} items/s"
                )
        elif event["event"] == "epoch":
            run.log({k: v for k, v in event.items() if k.startswith("val_")} | {"epoch": event["epoch"]})
            context.log.info(
                f"epoch {event['epoch']}: val loss {event['val_loss']:.4f} R@1 {event['val_recall_at_1']:.3f} "
                f"R@5 {event['val_recall_at_5']:.3f} (chance {event['chance_recall_at_5']:.3f}); "
                f"best epoch {event['best_epoch']}"
            )
        else:
            context.log.info(f"resumed from checkpoint at epoch {event['epoch']} step {event['step']}")

    try:
        result = fine_tune(
            base.clip, train, holdout, recipe, layout.checkpoints_dir, job_id, on_progress, compute
        )
    finally:
        run.finish()
    channels = fit_channels(base.clip, base.tokenizer, batches, pairs, split)
    fusion = channels.fusion
    context.log.info(
        f"lexical channel: {channels.lexical.dim} dims; fusion weights {fusion.weights} chosen on the "
        f"{channels.selection} ({fusion.rows} products)"
    )
    target = save_folder(
        base.clip,
        base.config,
        base.bpe_path,
        layout.model_dir("fine_tuned"),
        extra={
            "recipe": recipe.__dict__,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "base": base_origin,
            "train_products": len(train),
            "holdout_products": len(holdout),
            "fusion": {**fusion.as_dict(), "chosen_on": channels.selection},
            "lexical_dim": channels.lexical.dim,
        },
        lexical=channels.lexical,
    )
    fusion_rows = [
        {"channel": c, "weight": w, "neighbour_precision_alone": fusion.channel_scores.get(c)}
        for c, w in fusion.weights.items()
    ]
    best = result.best
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "model_version": weights_version(target),
            "recipe": "pretrained" if pretrained else "compact",
            "compute": f"{compute.device} {compute.precision}",
            "train_products": len(train),
            "holdout_products": len(holdout),
            "eval_products_never_trained_on": int(split["eval"].sum()),
            "best_epoch": result.best_epoch,
            "best_val_recall_at_1": best.get("val_recall_at_1"),
            "best_val_recall_at_5": best.get("val_recall_at_5"),
            "chance_recall_at_5": best.get("chance_recall_at_5"),
            "resumed_from": result.resumed_from or "fresh start",
            "seconds": round(time.perf_counter() - started, 1),
            "curve": dg.MetadataValue.md(markdown_table(result.history)),
            "lexical_dim": channels.lexical.dim,
            "fusion_weights": dg.MetadataValue.md(markdown_table(fusion_rows, 3)),
            "fusion_chosen_on": f"{channels.selection} ({fusion.rows} products; tasks: "
            f"{', '.join(fusion.tasks) or 'none, equal weights'})",
            "fused_neighbour_precision_at_5_selection": dg.MetadataValue.float(fusion.score),
        }
    )


@dg.asset(
    group_name=MODEL_GROUP,
    deps=[fine_tuned_model],
    kinds={"onnx"},
    pool=MODEL_POOL,
    description="Image and text towers of the fine-tuned model in ONNX (dynamic batch; dynamic sequence length "
    "for text, EOS pooling) plus int8 dynamically quantized variants.",
)
def onnx_model(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    layout = settings.layout
    model_dir = layout.model_dir("fine_tuned")
    started = time.perf_counter()
    target = export_towers(load_folder(model_dir).clip, model_dir, layout.onnx_dir)
    manifest = json.loads((target / "manifest.json").read_text())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "model_version": manifest["model_version"],
            "files": dg.MetadataValue.md(
                markdown_table([{"file": k, "bytes": v} for k, v in manifest["files"].items()])
            ),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


PARITY_SAMPLE = 64


@dg.asset_check(
    asset=onnx_model,
    blocking=True,
    description="ONNX fp32 (cos ≥ 0.9999) and int8 (cos ≥ 0.995) "
    "agree with torch on real eval-split products; downstream only uses a variant that passed. Times the "
    "passing variants on this CPU for MM_ONNX_VARIANT=auto.",
)
def onnx_parity(context: dg.AssetCheckExecutionContext, settings: PipelineSettings) -> dg.AssetCheckResult:
    layout = settings.layout
    model = load_folder(layout.model_dir("fine_tuned"))
    batches = materialized_batches(settings, context.instance)
    pairs, products = load_pairs(batches, model.tokenizer, settings.layout.token_dir)
    eval_rows = np.flatnonzero(training_split(products, settings.eval_fraction, 0.0)["eval"])[:PARITY_SAMPLE]
    texts = list(iter_texts(batches, np.isin(np.arange(len(pairs)), eval_rows)))
    onnx_dir = pin(layout.onnx_dir)  # the report describes exactly the export it checked
    report = check_parity(
        model.clip, onnx_dir, pairs.images(eval_rows), pairs.ids(eval_rows), texts, model.lexical
    )
    write_parity(report, onnx_dir, threads=settings.workers)
    timing = json.loads((onnx_dir / PARITY_FILE).read_text())["timing"]
    return dg.AssetCheckResult(
        passed=report.passed,
        metadata={
            "products_checked": len(eval_rows),
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
