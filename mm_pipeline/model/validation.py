"""How fine-tuning judges an epoch: the model scored on held-out pairs (in-batch loss, image→text
recall@1/@5) and the rule that picks the best epoch by those scores.

Scores are plain dicts (``val_loss``, ``val_recall_at_1``, ``val_recall_at_5``, ``chance_recall_at_5``) because
they are stored as they are in checkpoints and in the model folder's ``training.json``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from ruclip.model import CLIP

from mm_pipeline.model.clip import ImageTower, TextTower
from mm_pipeline.model.device import CPU, Compute, to_device
from mm_pipeline.model.losses import contrastive_loss
from mm_pipeline.model.pairs import PairedData
from mm_pipeline.prep.tokens import trim_padding


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
    """Held-out loss (in-batch, like training; NaN when no batch has two rows) and image→text recall@1/@5
    over the whole slice, with the recall@5 of chance beside them. ``clip`` keeps its train/eval mode."""
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


def is_better(candidate: dict, best: dict | None) -> bool:
    """Whether the scores ``candidate`` beat ``best`` (None: no epoch yet): higher recall@1, then recall@5,
    then lower loss."""
    if best is None:
        return True
    key = ("val_recall_at_1", "val_recall_at_5")
    if tuple(candidate[k] for k in key) != tuple(best[k] for k in key):
        return tuple(candidate[k] for k in key) > tuple(best[k] for k in key)
    return candidate["val_loss"] < best["val_loss"]
