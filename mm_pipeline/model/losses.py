"""The training objective: the symmetric in-batch image↔text cross-entropy (as in the original project's
``train_model.py``), with other rows of one product left out of the negatives, plus, for models trained from
scratch, the same loss between two views of each image and of each text (SLIP, Mu et al. 2021).

:func:`step_loss` is one training step's forward pass and loss. Losses are always computed in fp32, whatever
precision the towers ran in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from ruclip.model import CLIP

from mm_pipeline.model.clip import ImageTower, TextTower
from mm_pipeline.model.device import Compute
from mm_pipeline.model.split import NO_GROUP

VIEW_LOGIT_SCALE = torch.tensor(float(np.log(10.0)))  # temperature 0.1 of the in-modality losses (SimCLR)


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
) -> torch.Tensor:
    """Symmetric in-batch cross-entropy of float features ``[B, D]`` and ``[B, D]`` (row i of one matches
    row i of the other), a scalar; pairs marked in bool ``same`` ``[B, B]`` (other rows of one product) are
    left out of the negatives instead of being pushed apart."""
    image_features = F.normalize(image_features, dim=-1)
    text_features = F.normalize(text_features, dim=-1)
    logits = logit_scale.exp() * image_features @ text_features.t()
    if same is not None:
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@dataclass(frozen=True)
class TrainingTowers:
    """A model's towers on the training device, with the in-modality losses' fixed temperature there."""

    clip: CLIP
    image: ImageTower
    text: TextTower
    view_logit_scale: torch.Tensor

    @classmethod
    def on(cls, clip: CLIP, device: torch.device) -> TrainingTowers:
        """The towers of ``clip`` (already on ``device``)."""
        return cls(clip, ImageTower(clip).to(device), TextTower(clip), VIEW_LOGIT_SCALE.to(device))


def step_loss(
    towers: TrainingTowers, batch: dict[str, torch.Tensor], view_loss_weight: float, compute: Compute
) -> torch.Tensor:
    """One training step's fp32 scalar loss, the towers run in ``compute``'s autocast.

    ``batch`` is :func:`mm_pipeline.model.train.step_inputs` on the device: uint8 ``images`` ``[B, S, S, 3]``,
    int64 ``ids`` ``[B, L]``, bool ``same`` ``[B, B]`` and, when ``view_loss_weight`` is not 0, the second
    views ``image_view`` and ``text_view``, whose in-modality losses are added with that weight.
    """
    with compute.autocast():
        image_features = towers.image(batch["images"]).float()
        text_features = towers.text(batch["ids"]).float()
        if view_loss_weight:
            image_view = towers.image(batch["image_view"]).float()
            text_view = towers.text(batch["text_view"]).float()
    same = batch["same"]
    loss = contrastive_loss(image_features, text_features, towers.clip.logit_scale, same)
    if view_loss_weight:
        loss = loss + view_loss_weight * (
            contrastive_loss(image_features, image_view, towers.view_logit_scale, same)
            + contrastive_loss(text_features, text_view, towers.view_logit_scale, same)
        )
    return loss
