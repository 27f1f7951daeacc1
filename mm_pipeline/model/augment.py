"""Random training views: augmented images (flip, crop and colour jitter) and texts with dropped tokens.

Every function draws from the generator it is given, so a caller seeding one per step (as
:func:`mm_pipeline.model.train.step_inputs` does) gets the same views when a resumed run repeats that step.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mm_pipeline.prep.tokens import EOS_ID, token_lengths

AUGMENTATIONS = ("none", "flip", "crop_jitter")


def augment_images(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Random training views of uint8 ``[N, H, W, 3]`` images, same shape and dtype.

    ``flip`` mirrors half of the images; ``crop_jitter`` also crops 40-100% of the area (aspect 3:4-4:3)
    resized back to full size, and scales brightness and each colour channel, so a model trained from
    scratch on a few thousand photos learns shapes rather than memorizing backgrounds. Raises ``ValueError``
    for a ``kind`` not in ``AUGMENTATIONS``.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose from {AUGMENTATIONS}")
    if kind == "none":
        return images
    # One image at a time: batched, the flip select, float copy and jitter run as whole-batch parallel regions,
    # which in a GPU run's prefetch thread compete with the training step's own (measured on 2 busy cores: 3x
    # slower than serial); per image they stay below ATen's parallel grain (only the interpolation still
    # splits). Bit-identical views.
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
    """A text view of token ids ``[N, L]`` (same shape and dtype): each token between BOS and EOS is removed
    with probability ``fraction``, the rest shifted left and followed by EOS and padding."""
    lengths = token_lengths(ids)
    view = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        inner = ids[row, 1 : length - 1]
        kept = inner[rng.random(len(inner)) >= fraction]
        view[row, 0], view[row, 1 : len(kept) + 1], view[row, len(kept) + 1] = ids[row, 0], kept, EOS_ID
    return view
