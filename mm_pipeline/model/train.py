"""Contrastive image↔text fine-tuning of a ruCLIP model, with per-epoch validation and resumable checkpoints.

The loss is the symmetric cross-entropy over in-batch image/text logits (as in the original project's
``train_model.py``), plus, for models trained from scratch, the same loss between two views of each image
and of each text (SLIP, Mu et al. 2021). After every epoch the model is scored on a held-out slice of the
training split (loss, image→text recall@1/@5); the best epoch is kept, not the last. Checkpoints are written every
``checkpoint_every`` steps and at each epoch end; a rerun with the same data and recipe resumes from them.
Training streams from files: token ids and images are memory-mapped stores, read one minibatch at a time, the
next minibatch read and augmented in a background thread while the device works on this one. It runs on the
device and in the precision of a :class:`~mm_pipeline.model.device.Compute` (``MM_DEVICE``); the contrastive
losses are always computed in fp32.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from ruclip.model import CLIP

from mm_pipeline.inference.encoders import prefetched
from mm_pipeline.model.clip import ImageTower, TextTower
from mm_pipeline.model.device import CPU, Compute, staged, to_device
from mm_pipeline.model.split import NO_GROUP, eval_mask, group_codes, group_ids, holdout_mask
from mm_pipeline.prep.images import open_tensor_store
from mm_pipeline.prep.tokens import (
    EOS_ID,
    TextTokenizer,
    open_token_store,
    token_lengths,
    trim_padding,
    write_token_store,
)
from mm_pipeline.storage import atomic_path

MAX_LOGIT_SCALE = float(np.log(100.0))
VIEW_LOGIT_SCALE = torch.tensor(float(np.log(10.0)))  # temperature 0.1 of the in-modality losses (SimCLR)


@dataclass(frozen=True)
class TrainConfig:
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
    # categories; cropped/jittered views and SLIP-style in-modality losses keep them descriptive.
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
class PairedData:
    """Products as rows of memory-mapped stores: token ids (int32) and images (uint8), one store per batch.

    ``group`` holds ``dup_group`` codes (``NO_GROUP`` = none): rows of one product, which training never
    treats as negatives of each other.
    """

    nm: np.ndarray
    token_stores: list[np.ndarray]
    stores: list[np.ndarray]
    store_of: np.ndarray
    row_of: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return len(self.nm)

    def _rows(self, stores: list[np.ndarray], index: np.ndarray) -> np.ndarray:
        return np.stack([stores[self.store_of[i]][self.row_of[i]] for i in index])

    def ids(self, index: np.ndarray) -> np.ndarray:
        """int64 ``[len(index), context]`` token ids."""
        return self._rows(self.token_stores, index).astype(np.int64)

    def images(self, index: np.ndarray) -> np.ndarray:
        return self._rows(self.stores, index)

    def subset(self, mask: np.ndarray) -> PairedData:
        return PairedData(
            self.nm[mask],
            self.token_stores,
            self.stores,
            self.store_of[mask],
            self.row_of[mask],
            self.group[mask],
        )


@dataclass(frozen=True)
class BatchFiles:
    name: str
    cleaned_text: Path
    image_tensors: Path


SPLIT_COLUMNS = ("nm", "dup_group")


def load_split_columns(batches: Sequence[BatchFiles]) -> pd.DataFrame:
    """What the train/eval split needs of every product (nm, dup_group as contract ids, batch), without texts."""
    frames = []
    for batch in batches:
        columns = [c for c in SPLIT_COLUMNS if c in pq.read_schema(batch.cleaned_text).names]
        frame = pd.read_parquet(batch.cleaned_text, columns=columns).assign(batch=batch.name)
        frame["dup_group"] = group_ids(frame)  # the contract's type, whatever each file holds
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["batch"] = table["batch"].astype("category")
    return table


def iter_texts(batches: Sequence[BatchFiles], keep: np.ndarray, chunk_rows: int = 2048) -> Iterator[str]:
    """The texts of the products where ``keep`` is true (rows in batch order), read ``chunk_rows`` at a time."""
    offset = 0
    for batch in batches:
        for chunk in pq.ParquetFile(batch.cleaned_text).iter_batches(batch_size=chunk_rows, columns=["text"]):
            texts = chunk.column(0).to_pylist()
            yield from (t for t, k in zip(texts, keep[offset : offset + len(texts)], strict=True) if k)
            offset += len(texts)


def load_pairs(
    batches: Sequence[BatchFiles], tokenizer: TextTokenizer, token_dir: Path | str
) -> tuple[PairedData, pd.DataFrame]:
    """All products of ``batches`` as memory-mapped pairs, and their split columns (nm, dup_group, batch).

    Texts are tokenized chunk by chunk into token stores under ``token_dir`` (reused while the texts and the
    tokenizer stay the same); memory holds only per-product index arrays.
    """
    token_stores, stores, store_of, row_of = [], [], [], []
    for position, batch in enumerate(batches):
        token_stores.append(open_token_store(write_token_store(batch.cleaned_text, tokenizer, token_dir)))
        store = open_tensor_store(batch.image_tensors)
        if len(store) != len(token_stores[-1]):
            raise ValueError(
                f"{batch.name}: {len(token_stores[-1])} texts but {len(store)} images; rematerialize it"
            )
        stores.append(store)
        store_of.append(np.full(len(store), position, dtype=np.int32))
        row_of.append(np.arange(len(store), dtype=np.int64))
    table = load_split_columns(batches)
    pairs = PairedData(
        table["nm"].to_numpy(),
        token_stores,
        stores,
        np.concatenate(store_of),
        np.concatenate(row_of),
        group_codes(table),
    )
    return pairs, table


MIN_HOLDOUT = 200
MAX_HOLDOUT_FRACTION = 0.25


def training_split(
    products: pd.DataFrame, eval_fraction: float, holdout_fraction: float
) -> dict[str, np.ndarray]:
    """Masks ``train`` / ``holdout`` / ``eval``; eval is never trained on, holdout picks the best epoch and the
    fusion weights.

    The holdout takes ``holdout_fraction`` of the non-eval products, raised on small catalogues to reach
    ``MIN_HOLDOUT`` products but never above ``MAX_HOLDOUT_FRACTION`` (0 keeps it empty).
    """
    is_eval = eval_mask(products, eval_fraction)
    if holdout_fraction > 0:
        wanted = MIN_HOLDOUT / max(int((~is_eval).sum()), 1)
        holdout_fraction = max(holdout_fraction, min(wanted, MAX_HOLDOUT_FRACTION))
    is_holdout = ~is_eval & holdout_mask(products, holdout_fraction)
    return {"train": ~is_eval & ~is_holdout, "holdout": is_holdout, "eval": is_eval}


AUGMENTATIONS = ("none", "flip", "crop_jitter")


def augment_images(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Random training views of uint8 ``[N, H, W, 3]`` images, same shape and dtype.

    ``flip`` mirrors half of the images; ``crop_jitter`` also crops 40-100% of the area (aspect 3:4-4:3)
    resized back to full size, and scales brightness and each colour channel, so a model trained from
    scratch on a few thousand photos learns shapes rather than memorizing backgrounds.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose from {AUGMENTATIONS}")
    if kind == "none":
        return images
    # One image at a time: batched, the flip select, float copy and jitter ran as whole-batch parallel regions
    # in the prefetch thread beside the training step's own (on 2 busy cores 3x slower than serial); per image
    # they stay below ATen's parallel grain (only the interpolation still splits). Bit-identical views.
    n, height, width, _ = images.shape
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    if kind == "flip":
        mirrored = torch.empty_like(images)
        for i, image in enumerate(images):
            mirrored[i] = image.flip(1) if flips[i] else image
        return mirrored
    area = torch.empty(n).uniform_(0.4, 1.0, generator=generator)
    aspect = torch.exp(torch.empty(n).uniform_(np.log(3 / 4), np.log(4 / 3), generator=generator))
    crop_h = (height * torch.sqrt(area / aspect)).clamp(8, height).long().tolist()
    crop_w = (width * torch.sqrt(area * aspect)).clamp(8, width).long().tolist()
    top = (torch.rand(n, generator=generator) * (height - torch.tensor(crop_h) + 1)).long().tolist()
    left = (torch.rand(n, generator=generator) * (width - torch.tensor(crop_w) + 1)).long().tolist()
    brightness = torch.empty(n, 1, 1, 1).uniform_(0.7, 1.3, generator=generator)
    channel = torch.empty(n, 3, 1, 1).uniform_(0.85, 1.15, generator=generator)
    views = torch.empty_like(images)
    for i, image in enumerate(images):
        image = image.flip(1) if flips[i] else image
        crop = image[top[i] : top[i] + crop_h[i], left[i] : left[i] + crop_w[i]].permute(2, 0, 1)
        view = F.interpolate(crop[None].float(), size=(height, width), mode="bilinear", align_corners=False)
        view = (view * brightness[i : i + 1] * channel[i : i + 1]).clamp_(0, 255).round_()
        views[i] = view[0].permute(1, 2, 0)
    return views


def drop_tokens(ids: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A text view: each token between BOS and EOS is removed with probability ``fraction``."""
    lengths = token_lengths(ids)
    view = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        inner = ids[row, 1 : length - 1]
        kept = inner[rng.random(len(inner)) >= fraction]
        view[row, 0], view[row, 1 : len(kept) + 1], view[row, len(kept) + 1] = ids[row, 0], kept, EOS_ID
    return view


def same_product(group: np.ndarray) -> torch.Tensor:
    """bool ``[B, B]``: rows of one ``dup_group`` (never the diagonal, never ``NO_GROUP`` rows)."""
    codes = torch.from_numpy(np.asarray(group, dtype=np.int64))
    same = (codes[:, None] == codes[None, :]) & (codes[:, None] != NO_GROUP)
    return same.fill_diagonal_(False)


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    same: torch.Tensor | None = None,
):
    """Symmetric in-batch cross-entropy; pairs marked in ``same`` (other rows of one product) are left out of
    the negatives instead of being pushed apart."""
    image_features = F.normalize(image_features, dim=-1)
    text_features = F.normalize(text_features, dim=-1)
    logits = logit_scale.exp() * image_features @ text_features.t()
    if same is not None:
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@torch.no_grad()
def encode_pairs(
    clip: CLIP, data: PairedData, batch_size: int = 128, compute: Compute = CPU
) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``[len(data), embed_dim]`` image and text features on ``compute.device`` (``clip`` must be
    there), computed in its precision."""
    image_tower, text_tower = ImageTower(clip).eval().to(compute.device), TextTower(clip).eval()
    images, texts = [], []
    for start in range(0, len(data), batch_size):
        index = np.arange(start, min(start + batch_size, len(data)))
        pixels = to_device(torch.from_numpy(data.images(index)), compute.device)
        ids = to_device(torch.from_numpy(trim_padding(data.ids(index))), compute.device)
        with compute.autocast():
            images.append(image_tower(pixels).float())
            texts.append(text_tower(ids).float())
    return torch.cat(images), torch.cat(texts)


@torch.no_grad()
def validate(clip: CLIP, data: PairedData, batch_size: int, compute: Compute = CPU) -> dict[str, float]:
    """Held-out loss (in-batch, like training) and image→text recall@1/@5 over the whole slice."""
    was_training = clip.training
    clip.eval()
    image_features, text_features = encode_pairs(clip, data, batch_size, compute)
    losses = [
        float(
            contrastive_loss(
                image_features[s : s + batch_size], text_features[s : s + batch_size], clip.logit_scale
            )
        )
        for s in range(0, len(data), batch_size)
        if min(batch_size, len(data) - s) > 1
    ]
    similarity = F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).t()
    own = similarity.diagonal().unsqueeze(1)
    rank = (similarity > own).sum(dim=1)
    clip.train(was_training)
    return {
        "val_loss": float(np.mean(losses)) if losses else float("nan"),
        "val_recall_at_1": float((rank < 1).float().mean()),
        "val_recall_at_5": float((rank < 5).float().mean()),
        "chance_recall_at_5": min(1.0, 5 / max(len(data), 1)),
    }


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    resumed_from: str | None = None
    seconds: float = 0.0

    @property
    def best(self) -> dict:
        return self.history[self.best_epoch] if self.best_epoch >= 0 else {}


def fingerprint(config: TrainConfig, model_config: dict, data: PairedData, base_weights: Path) -> str:
    """Identifies a training job: resuming is only allowed into the same recipe, data and starting weights."""
    digest = hashlib.sha256(json.dumps([asdict(config), model_config], sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(data.nm).tobytes())
    for start in range(0, len(data), 4096):
        digest.update(data.ids(np.arange(start, min(start + 4096, len(data)))).tobytes())
    stat = base_weights.stat()
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _is_better(candidate: dict, best: dict | None) -> bool:
    if best is None:
        return True
    key = ("val_recall_at_1", "val_recall_at_5")
    if tuple(candidate[k] for k in key) != tuple(best[k] for k in key):
        return tuple(candidate[k] for k in key) > tuple(best[k] for k in key)
    return candidate["val_loss"] < best["val_loss"]


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


FUSED_DEVICES = ("cpu", "cuda")  # where torch has a fused Adam/AdamW kernel


def make_optimizer(clip: CLIP, config: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``clip``'s parameters, fused (one kernel for all parameters, the same
    update up to float rounding: a third of the per-parameter loop's time on 2 CPU cores) where torch has it."""
    fused = all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in clip.parameters())
    return OPTIMIZERS[config.optimizer](
        clip.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused or None
    )


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


def fine_tune(
    clip: CLIP,
    train: PairedData,
    holdout: PairedData,
    config: TrainConfig,
    checkpoint_dir: Path,
    job_id: str,
    on_progress: Callable[[dict], None] = lambda event: None,
    compute: Compute = CPU,
) -> TrainResult:
    """Train ``clip`` in place on ``compute.device`` with its autocast; on return ``clip`` holds the weights
    of the best epoch, on the CPU."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    device = compute.device
    clip.to(device)
    image_tower, text_tower = ImageTower(clip).to(device), TextTower(clip)
    view_logit_scale = VIEW_LOGIT_SCALE.to(device)
    optimizer = make_optimizer(clip, config)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    result = TrainResult()
    start_epoch, start_step, global_step = 0, 0, 0
    if last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        if state["job_id"] == job_id:
            clip.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start_epoch, start_step, global_step = state["epoch"], state["step"], state["global_step"]
            result.history, result.best_epoch = state["history"], state["best_epoch"]
            result.resumed_from = f"epoch {start_epoch} step {start_step}"
            on_progress({"event": "resumed", "epoch": start_epoch, "step": start_step})

    def save_checkpoint(epoch: int, step: int) -> None:
        state = {
            "job_id": job_id,
            "model": clip.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "step": step,
            "global_step": global_step,
            "history": result.history,
            "best_epoch": result.best_epoch,
        }
        with atomic_path(last_path) as tmp:
            torch.save(state, tmp)

    steps_per_epoch = max(1, len(train) // config.batch_size)
    clip.train()
    for epoch in range(start_epoch, config.epochs):
        order = np.random.default_rng(config.seed + epoch).permutation(len(train))
        epoch_started, seen = time.perf_counter(), 0

        def load(step: int, epoch: int = epoch, order: np.ndarray = order) -> dict[str, torch.Tensor]:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            # seeded per step, so a resumed epoch draws the same views as an uninterrupted one
            step_seed = config.seed * 1_000_003 + epoch * 10_007 + step
            return step_inputs(train, index, config, step_seed, device)

        steps = range(start_step if epoch == start_epoch else 0, steps_per_epoch)
        for step, inputs in prefetched(load, steps):
            batch = {name: to_device(tensor, device) for name, tensor in inputs.items()}
            lr = (
                config.lr * config.lr_decay**epoch * min(1.0, (global_step + 1) / max(config.warmup_steps, 1))
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            with compute.autocast():
                image_features = image_tower(batch["images"]).float()
                text_features = text_tower(batch["ids"]).float()
                if config.view_loss_weight:
                    image_view = image_tower(batch["image_view"]).float()
                    text_view = text_tower(batch["text_view"]).float()
            same = batch["same"]
            loss = contrastive_loss(image_features, text_features, clip.logit_scale, same)
            if config.view_loss_weight:
                loss = loss + config.view_loss_weight * (
                    contrastive_loss(image_features, image_view, view_logit_scale, same)
                    + contrastive_loss(text_features, text_view, view_logit_scale, same)
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
            optimizer.step()
            with torch.no_grad():
                clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
            global_step += 1
            seen += len(batch["ids"])
            rate = seen / max(time.perf_counter() - epoch_started, 1e-9)
            on_progress(
                {
                    "event": "step",
                    "epoch": epoch,
                    "step": step + 1,
                    "steps": steps_per_epoch,
                    "global_step": global_step,
                    "loss": loss.item(),
                    "lr": lr,
                    "items_per_s": rate,
                }
            )
            if (step + 1) % config.checkpoint_every == 0:
                save_checkpoint(epoch, step + 1)
        scores = {"epoch": epoch, **validate(clip, holdout, config.batch_size, compute)}
        result.history.append(scores)
        if _is_better(scores, result.best if result.best_epoch >= 0 else None):
            result.best_epoch = epoch
            with atomic_path(best_path) as tmp:
                torch.save(copy.deepcopy(clip.state_dict()), tmp)
        on_progress({"event": "epoch", **scores, "best_epoch": result.best_epoch})
        save_checkpoint(epoch + 1, 0)
    clip.to("cpu").load_state_dict(torch.load(best_path, map_location="cpu"))
    clip.eval()
    result.seconds = time.perf_counter() - started
    return result
