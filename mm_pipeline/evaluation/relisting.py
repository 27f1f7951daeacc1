"""Synthetic re-listings: the same product with a perturbed photo and a reworded description.

Used as duplicate ground truth when a catalogue has no ``dup_group`` column: every original and its
re-listing form one group.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageEnhance

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
MIN_GROUPS = 4  # dup_group groups of two or more rows needed before they serve as duplicate ground truth
RELISTED_PRODUCTS = 300  # products re-listed where they do not


def perturb_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new photo of the same object: crop, shift, mirror, background tint and lighting change."""
    size = image.shape[0]
    picture = Image.fromarray(image)
    scale = rng.uniform(0.75, 0.95)
    side = int(size * scale)
    left, top = rng.integers(0, size - side + 1, size=2)
    picture = picture.crop((left, top, left + side, top + side)).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    if rng.random() < 0.5:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    picture = ImageEnhance.Brightness(picture).enhance(rng.uniform(0.75, 1.25))
    picture = ImageEnhance.Contrast(picture).enhance(rng.uniform(0.8, 1.2))
    picture = ImageEnhance.Color(picture).enhance(rng.uniform(0.8, 1.2))
    array = np.asarray(picture, dtype=np.float32)
    near_white = array.min(axis=2, keepdims=True) > 235  # the letterbox background
    tint = rng.uniform(200, 255, size=3).astype(np.float32)
    return np.where(near_white, tint, array).clip(0, 255).astype(np.uint8)


def reword(text: str, rng: np.random.Generator) -> str:
    """Keep the title sentence, shuffle the rest and drop some words: same facts, different wording."""
    sentences = _SENTENCE.split(text)
    head, rest = sentences[0], sentences[1:]
    order = rng.permutation(len(rest))
    kept = []
    for index in order:
        words = rest[index].split()
        mask = rng.random(len(words)) > 0.15
        kept.append(" ".join(w for w, keep in zip(words, mask, strict=True) if keep))
    return " ".join([head, *[s for s in kept if s]])


def make_relistings(texts: list[str], images: np.ndarray, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """One re-listing per product: ``(reworded texts, perturbed images)`` aligned with the inputs."""
    rng = np.random.default_rng(seed)
    new_images = np.stack([perturb_image(image, rng) for image in images]) if len(images) else images
    return [reword(t, rng) for t in texts], new_images
