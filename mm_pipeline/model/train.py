"""Contrastive image↔text fine-tuning of a ruCLIP model: the recipes (:data:`RECIPES`) and the training loop
(:func:`fine_tune`).

After every epoch the model is scored on a held-out slice of the training split
(:mod:`mm_pipeline.model.validation`); the best epoch is kept, not the last. Checkpoints are written every
``checkpoint_every`` steps and at each epoch end; a rerun with the same data and recipe resumes from them
(:mod:`mm_pipeline.model.checkpoints`). Training streams from files (:mod:`mm_pipeline.model.pairs`); on a
GPU the next minibatch is read and augmented (:mod:`mm_pipeline.model.augment`) in a background thread
while the device works on this one (:func:`batches_of`). It runs on the device and in the precision of a
:class:`~mm_pipeline.model.device.Compute` (``MM_DEVICE``); the losses (:mod:`mm_pipeline.model.losses`)
are always computed in fp32. Progress is reported as typed events (:mod:`mm_pipeline.model.events`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from ruclip.model import CLIP

from mm_pipeline.inference.encoders import prefetched
from mm_pipeline.model.augment import augment_images, drop_tokens
from mm_pipeline.model.checkpoints import Checkpoints, TrainingState
from mm_pipeline.model.device import CPU, Compute, staged, to_device
from mm_pipeline.model.events import EpochEvent, ResumedEvent, StepEvent, TrainingEvent
from mm_pipeline.model.losses import TrainingTowers, same_product, step_loss
from mm_pipeline.model.pairs import PairedData
from mm_pipeline.model.validation import is_better, validate
from mm_pipeline.prep.tokens import trim_padding

MAX_LOGIT_SCALE = float(np.log(100.0))


@dataclass(frozen=True)
class TrainConfig:
    """A fine-tuning recipe: optimizer and schedule, the holdout share, checkpoint spacing and the training
    views (augmentation, in-modality loss weight, token drop)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    lr_decay: float  # multiplied into the learning rate after every epoch
    optimizer: Literal["adam", "adamw"] = "adamw"
    warmup_steps: int = 0
    seed: int = 0
    holdout_fraction: float = 0.1
    checkpoint_every: int = 25
    augment: str = "flip"  # "none", "flip", or "crop_jitter" (random resized crop + flip + colour jitter)
    # weight of the in-modality losses (image view ↔ image view, text ↔ text with dropped tokens), as in SLIP
    view_loss_weight: float = 0.0
    token_drop: float = 0.2


RECIPES = {
    # The original project's recipe for pretrained weights (Adam, lr 1e-6, weight decay 0.01, per-epoch decay).
    "pretrained": TrainConfig(
        epochs=3, batch_size=32, lr=1e-6, weight_decay=0.01, lr_decay=0.9, optimizer="adam"
    ),
    # A recipe that learns from random initialization in minutes on 2 cores. With a few thousand pairs the
    # image↔text loss alone latches onto colour words and leaves embeddings worse than random weights for
    # categories; cropped/jittered views and SLIP-style in-modality losses keep them descriptive. The text
    # view costs a fifth of a step and is worth it: without it, or drawn only every other step, the fused
    # vector's neighbour precision@5 fell on flipkart1050 (and without it on the sample catalogues) while no
    # probe F1 moved beyond noise.
    "compact": TrainConfig(
        epochs=10,
        batch_size=64,
        lr=1e-3,
        weight_decay=0.05,
        lr_decay=0.85,
        warmup_steps=20,
        augment="crop_jitter",
        view_loss_weight=2.0,
        token_drop=0.3,
    ),
}


@dataclass
class TrainResult:
    """What :func:`fine_tune` returns: every epoch's held-out scores (written to ``training.json`` as they
    are), the best epoch (-1: none), where it resumed from, and the seconds it took."""

    history: list[dict] = field(default_factory=list)  # per epoch: {"epoch", **validate(...)}
    best_epoch: int = -1
    resumed_from: str | None = None
    seconds: float = 0.0

    @property
    def best(self) -> dict:
        return self.history[self.best_epoch] if self.best_epoch >= 0 else {}


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


FUSED_DEVICES = ("cpu", "cuda")  # where torch has a fused Adam/AdamW kernel


def make_optimizer(clip: CLIP, config: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``clip``'s parameters, fused (one kernel for all parameters, the same
    update up to float rounding: a third of the per-parameter loop's time on 2 CPU cores) where torch has it."""
    fused = all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in clip.parameters())
    return OPTIMIZERS[config.optimizer](
        clip.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused or None
    )


def learning_rate(config: TrainConfig, epoch: int, global_step: int) -> float:
    """The rate of optimizer step ``global_step`` (0-based) in ``epoch``: linear warmup over ``warmup_steps``,
    times ``lr_decay`` per finished epoch."""
    return config.lr * config.lr_decay**epoch * min(1.0, (global_step + 1) / max(config.warmup_steps, 1))


def step_inputs(
    data: PairedData, index: np.ndarray, config: TrainConfig, step_seed: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """One training step's CPU tensors (pinned for a GPU ``device``): augmented uint8 ``images``
    ``[B, S, S, 3]``, trimmed int64 ``ids`` ``[B, L]``, bool ``same`` ``[B, B]`` (:func:`same_product`) and,
    with in-modality losses, a second image view ``image_view`` and a text view ``text_view``.

    Views are drawn from generators seeded with ``step_seed``, so a resumed epoch draws the same ones.
    """
    views, rng = torch.Generator().manual_seed(step_seed), np.random.default_rng(step_seed)
    raw_images, ids = torch.from_numpy(data.images(index)), data.ids(index)
    inputs = {
        "images": augment_images(raw_images, config.augment, views),
        "ids": torch.from_numpy(trim_padding(ids)),
        "same": same_product(data.group[index]),
    }
    if config.view_loss_weight:
        inputs["image_view"] = augment_images(raw_images, config.augment, views)
        inputs["text_view"] = torch.from_numpy(trim_padding(drop_tokens(ids, config.token_drop, rng)))
    return {name: staged(tensor, device) for name, tensor in inputs.items()}


def batches_of(
    load: Callable[[int], dict[str, torch.Tensor]], steps: range, device: torch.device
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """``(step, load(step))`` per step. For a GPU the next batch is read and augmented in a background thread
    while the device works on this one; on the CPU it is made inline, after the step: there the thread's
    small operations and interpreter lock stall the step's own thread pool (2 cores, 10k sample: 0.41 s per
    step prefetched, 0.36 s inline, for 0.03 s of batch making)."""
    if device.type != "cpu":
        return prefetched(load, steps)
    return ((step, load(step)) for step in steps)


def descend(clip: CLIP, optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> None:
    """One optimizer step on ``loss`` at learning rate ``lr``: gradients clipped to norm 1, then the logit
    scale kept within [0, ``MAX_LOGIT_SCALE``]."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
    optimizer.step()
    with torch.no_grad():
        clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


def fine_tune(
    clip: CLIP,
    train: PairedData,
    holdout: PairedData,
    config: TrainConfig,
    checkpoint_dir: Path,
    job_id: str,
    on_progress: Callable[[TrainingEvent], None] = lambda event: None,
    compute: Compute = CPU,
) -> TrainResult:
    """Train ``clip`` in place on ``compute.device`` with its autocast, resuming from job ``job_id``'s
    checkpoints under ``checkpoint_dir``; on return ``clip`` holds the weights of the best epoch, on the CPU.
    ``on_progress`` gets a :class:`ResumedEvent` (when resuming), then a :class:`StepEvent` per step and an
    :class:`EpochEvent` per epoch. Raises ``FileNotFoundError`` when ``config.epochs`` is 0 and nothing
    was resumed."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    device = compute.device
    clip.to(device)
    towers = TrainingTowers.on(clip, device)
    optimizer = make_optimizer(clip, config)
    checkpoints = Checkpoints(checkpoint_dir, job_id)
    state, resumed_from = checkpoints.resume(clip, optimizer), None
    if state is not None:
        resumed_from = f"epoch {state.epoch} step {state.step}"
        on_progress(ResumedEvent(state.epoch, state.step))
    state = state or TrainingState()
    steps_per_epoch = max(1, len(train) // config.batch_size)
    clip.train()
    for epoch in range(state.epoch, config.epochs):
        order = np.random.default_rng(config.seed + epoch).permutation(len(train))
        epoch_started, seen = time.perf_counter(), 0

        def load(step: int, epoch: int = epoch, order: np.ndarray = order) -> dict[str, torch.Tensor]:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            # seeded per step, so a resumed epoch draws the same views as an uninterrupted one
            step_seed = config.seed * 1_000_003 + epoch * 10_007 + step
            return step_inputs(train, index, config, step_seed, device)

        for step, inputs in batches_of(load, range(state.step, steps_per_epoch), device):
            batch = {name: to_device(tensor, device) for name, tensor in inputs.items()}
            lr = learning_rate(config, epoch, state.global_step)
            loss = step_loss(towers, batch, config.view_loss_weight, compute)
            descend(clip, optimizer, loss, lr)
            state.step, state.global_step, seen = step + 1, state.global_step + 1, seen + len(batch["ids"])
            rate = seen / max(time.perf_counter() - epoch_started, 1e-9)
            on_progress(StepEvent(epoch, step + 1, steps_per_epoch, state.global_step, loss.item(), lr, rate))
            if state.step % config.checkpoint_every == 0:
                checkpoints.save(clip, optimizer, state)
        scores = {"epoch": epoch, **validate(clip, holdout, config.batch_size, compute)}
        state.history.append(scores)
        if is_better(scores, state.best):
            state.best_epoch = epoch
            checkpoints.save_best(clip)
        on_progress(EpochEvent(**scores, best_epoch=state.best_epoch))
        state.epoch, state.step = epoch + 1, 0
        checkpoints.save(clip, optimizer, state)
    checkpoints.restore_best(clip)
    clip.eval()
    return TrainResult(state.history, state.best_epoch, resumed_from, time.perf_counter() - started)
