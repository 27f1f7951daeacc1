"""The model stage from files to files (no Dagster here): fine-tuning the base model on the catalogue
batches, the ONNX export, and the export's parity check on eval products.

Fine-tuning is planned first (:func:`plan_fine_tuning`: data, split, compute, job id) so a caller can open
its experiment tracking with the plan's sizes, then run (:func:`fine_tune_plan`). What the base model is
and which recipe trains it are decided in :mod:`mm_pipeline.model.recipe`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mm_pipeline.inference.encoders import read_manifest
from mm_pipeline.layout import Layout
from mm_pipeline.model.channels import Channels, fit_channels
from mm_pipeline.model.checkpoints import fingerprint
from mm_pipeline.model.clip import LoadedModel, load_folder, save_folder
from mm_pipeline.model.device import Compute, training_compute
from mm_pipeline.model.events import TrainingEvent
from mm_pipeline.model.export import ParityReport, check_parity, export_towers, weights_version, write_parity
from mm_pipeline.model.pairs import BatchFiles, PairedData, iter_texts, load_pairs, training_split
from mm_pipeline.model.recipe import Recipe, require_batches
from mm_pipeline.model.train import TrainResult, fine_tune
from mm_pipeline.storage import pin

MIN_HOLDOUT_PRODUCTS = 4  # fewer cannot pick the best epoch
PARITY_SAMPLE = 64  # eval products the ONNX export is compared with torch on
# training photos the int8-static image tower is calibrated on: NNCF's statistics settle by ~100 (ViT-B/32 at
# 96 photos: cosine 0.997 to fp32)
CALIBRATION_PHOTOS = 128


class TooFewProductsError(ValueError):
    """The training split cannot fill one batch of the recipe, or the holdout is too small to judge epochs."""


@dataclass(frozen=True)
class TrainingPlan:
    base: LoadedModel
    recipe: Recipe
    batches: Sequence[BatchFiles]
    pairs: PairedData  # every product of ``batches``, rows in batch order
    split: dict[str, np.ndarray]  # bool [len(pairs)] masks train / holdout / eval
    train: PairedData
    holdout: PairedData
    compute: Compute
    job_id: str  # resuming from checkpoints is allowed only into the same job

    def tracking_config(self) -> dict:
        """What an experiment tracker records about this run."""
        return {
            "recipe": self.recipe.config.__dict__,
            "model": self.base.config,
            "train": len(self.train),
            "holdout": len(self.holdout),
        }


def plan_fine_tuning(
    layout: Layout,
    batches: Sequence[BatchFiles],
    recipe: Recipe,
    eval_fraction: float,
    threads: int,
    device: str,
) -> TrainingPlan:
    """Load the base model and every product of ``batches``, split them and choose where to train (``device``:
    auto, cpu or cuda; torch gets ``threads`` CPU threads). Raises ``NoBatchesError`` without batches and
    :class:`TooFewProductsError` when the split is too small for ``recipe``."""
    base = load_folder(layout.model_dir("base"))
    batches = require_batches(batches)
    pairs, products = load_pairs(batches, base.tokenizer, layout.token_dir)
    split = training_split(products, eval_fraction, recipe.config.holdout_fraction)
    train, holdout = pairs.subset(split["train"]), pairs.subset(split["holdout"])
    if len(train) < recipe.config.batch_size or len(holdout) < MIN_HOLDOUT_PRODUCTS:
        raise TooFewProductsError(f"too few products to train: {len(train)} train, {len(holdout)} held out")
    torch.set_num_threads(threads)
    compute = training_compute(device, base.clip, recipe.config.batch_size)
    job_id = fingerprint(recipe.config, base.config, train, layout.model_weights("base"))
    return TrainingPlan(base, recipe, batches, pairs, split, train, holdout, compute, job_id)


@dataclass(frozen=True)
class FineTuned:
    path: Path  # layout.model_dir("fine_tuned")
    model_version: str
    training: TrainResult
    channels: Channels  # the lexical projection and the fusion weights fitted beside the towers
    eval_products: int  # never trained on

    def fusion_rows(self) -> list[dict]:
        """One row per channel: its fusion weight and the fusion objective it scores alone."""
        fusion = self.channels.fusion
        return [
            {"channel": c, "weight": w, "objective_alone": fusion.channel_scores.get(c)}
            for c, w in fusion.weights.items()
        ]


def fine_tune_plan(
    layout: Layout, plan: TrainingPlan, on_progress: Callable[[TrainingEvent], None] = lambda event: None
) -> FineTuned:
    """Train the towers (checkpoints under ``layout.checkpoints_dir``; ``on_progress`` gets every step, epoch
    and resume event of :func:`mm_pipeline.model.train.fine_tune`, typed as in :mod:`mm_pipeline.model.events`), fit the lexical channel and the fusion
    weights, and write ``layout.model_dir("fine_tuned")`` with its ``training.json``."""
    base, recipe = plan.base, plan.recipe
    result = fine_tune(
        base.clip,
        plan.train,
        plan.holdout,
        recipe.config,
        layout.checkpoints_dir,
        plan.job_id,
        on_progress,
        plan.compute,
    )
    channels = fit_channels(base.clip, base.tokenizer, plan.batches, plan.pairs, plan.split)
    target = save_folder(
        base.clip,
        base.config,
        base.bpe_path,
        layout.model_dir("fine_tuned"),
        extra={
            "recipe": recipe.config.__dict__,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "base": recipe.base_origin,
            "train_products": len(plan.train),
            "holdout_products": len(plan.holdout),
            "fusion": {**channels.fusion.as_dict(), "chosen_on": channels.selection},
            "lexical_dim": channels.lexical.dim,
        },
        lexical=channels.lexical,
    )
    return FineTuned(target, weights_version(target), result, channels, int(plan.split["eval"].sum()))


@dataclass(frozen=True)
class Export:
    path: Path  # layout.onnx_dir
    manifest: dict  # model_version, files (name -> bytes), fusion weights, ...


def export_onnx(
    layout: Layout,
    batches: Sequence[BatchFiles] = (),
    eval_fraction: float = 0.0,
    calibration_photos: int = CALIBRATION_PHOTOS,
) -> Export:
    """Export the fine-tuned model's towers (fp32 and int8) as the new version of ``layout.onnx_dir``; with
    ``batches``, also the ``int8-static`` image tower calibrated on up to ``calibration_photos`` training-split
    photos of them, spread evenly over the split (eval products are never seen)."""
    model_dir = layout.model_dir("fine_tuned")
    model = load_folder(model_dir)
    calibration = None
    if batches:
        pairs, products = load_pairs(batches, model.tokenizer, layout.token_dir)
        training = np.flatnonzero(~training_split(products, eval_fraction, 0.0)["eval"])
        picked = np.unique(np.linspace(0, len(training) - 1, min(calibration_photos, len(training))).round())
        calibration = pairs.images(training[picked.astype(np.int64)]) if len(training) else None
    target = export_towers(model.clip, model_dir, layout.onnx_dir, calibration_images=calibration)
    return Export(target, read_manifest(pin(target)))


@dataclass(frozen=True)
class ParityCheck:
    report: ParityReport
    products_checked: int
    timing: dict  # the parity file's timing: seconds per passing variant and the CPU it ran on


def check_onnx_parity(
    layout: Layout,
    batches: Sequence[BatchFiles],
    eval_fraction: float,
    threads: int,
    sample: int = PARITY_SAMPLE,
) -> ParityCheck:
    """Compare the current export with the fine-tuned torch model on up to ``sample`` eval products of
    ``batches`` and write the report, with the passing variants timed on ``threads`` threads, into that
    export (``layout.onnx_parity``)."""
    model = load_folder(layout.model_dir("fine_tuned"))
    pairs, products = load_pairs(batches, model.tokenizer, layout.token_dir)
    rows = np.flatnonzero(training_split(products, eval_fraction, 0.0)["eval"])[:sample]
    texts = list(iter_texts(batches, np.isin(np.arange(len(pairs)), rows)))
    onnx_dir = pin(layout.onnx_dir)  # the report describes exactly the export it checked
    report = check_parity(model.clip, onnx_dir, pairs.images(rows), pairs.ids(rows), texts, model.lexical)
    write_parity(report, onnx_dir, threads=threads)
    timing = json.loads((onnx_dir / layout.onnx_parity.name).read_text())["timing"]
    return ParityCheck(report, len(rows), timing)
