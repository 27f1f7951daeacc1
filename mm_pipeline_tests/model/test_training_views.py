"""Training views: image augmentations and token dropping keep shapes, specials and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mm_pipeline.model.augment import augment_images, drop_tokens
from mm_pipeline.prep.tokens import BOS_ID, EOS_ID, token_lengths


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


def test_token_drop_keeps_bos_eos_and_order():
    ids = np.zeros((3, 12), dtype=np.int64)
    for row, length in enumerate((10, 5, 2)):
        ids[row, 0], ids[row, 1 : length - 1], ids[row, length - 1] = (
            BOS_ID,
            100 + np.arange(length - 2),
            EOS_ID,
        )
    assert np.array_equal(drop_tokens(ids, 0.0, np.random.default_rng(0)), ids)
    view = drop_tokens(ids, 0.5, np.random.default_rng(0))
    lengths = token_lengths(view)
    assert (view[:, 0] == BOS_ID).all() and (view[np.arange(3), lengths - 1] == EOS_ID).all()
    assert (lengths <= token_lengths(ids)).all() and lengths[2] == 2
    for row, length in enumerate(lengths):
        inner = view[row, 1 : length - 1]
        assert np.all(np.diff(inner) > 0) and set(inner) <= set(ids[row]) and not view[row, length:].any()
    everything_dropped = drop_tokens(ids, 1.0, np.random.default_rng(0))
    assert (token_lengths(everything_dropped) == 2).all()
