"""Training views: image augmentations keep shape and dtype and repeat with their seed."""

from __future__ import annotations

import pytest
import torch

from mm_pipeline.model.augment import augment_images


def _images(n: int = 6, size: int = 32) -> torch.Tensor:
    """Left half dark, right half bright: a flip or crop visibly changes them."""
    images = torch.zeros(n, size, size, 3, dtype=torch.uint8)
    images[:, :, size // 2 :] = 200
    return images


def test_augmentations_keep_shape_dtype_and_repeat_with_the_seed():
    images = _images()
    assert augment_images(images, "none", torch.Generator().manual_seed(0)) is images
    for kind in ("flip", "crop_jitter"):
        first = augment_images(images, kind, torch.Generator().manual_seed(1))
        again = augment_images(images, kind, torch.Generator().manual_seed(1))
        other = augment_images(images, kind, torch.Generator().manual_seed(2))
        assert first.shape == images.shape and first.dtype == torch.uint8
        assert torch.equal(first, again) and not torch.equal(first, other)
    flipped = augment_images(images, "flip", torch.Generator().manual_seed(1))
    assert all(torch.equal(f, i) or torch.equal(f, i.flip(1)) for f, i in zip(flipped, images, strict=True))
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        augment_images(images, "blur", torch.Generator())
