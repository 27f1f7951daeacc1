"""Deterministic train/eval split by a hash of ``nm`` (or of ``dup_group``, so re-listings stay together)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from mm_pipeline.catalog.groups import dup_group_ids


def _unit_interval(key: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


NO_GROUP = -1


def group_ids(products: pd.DataFrame) -> pd.Series:
    """``dup_group`` in its contract form (:func:`~mm_pipeline.catalog.groups.dup_group_ids`): ``string``
    ids, ``<NA>`` where a product has no group (no column, null, blank, -1); ``3``, ``3.0`` and ``"3"`` agree."""
    if "dup_group" not in products.columns:
        return pd.Series(pd.NA, index=products.index, dtype="string")
    return dup_group_ids(products["dup_group"])


def group_codes(products: pd.DataFrame) -> np.ndarray:
    """int64 ``[N]``: ``dup_group`` as int codes (any id type: ints, SKU strings); -1 where a product has no
    group."""
    ids = group_ids(products)
    codes, _ = pd.factorize(ids)  # <NA> → -1
    return np.where(ids.isna().to_numpy(), NO_GROUP, codes).astype(np.int64)


def split_keys(products: pd.DataFrame) -> list[str]:
    """The hash key of each product: ``g<group id>`` for a grouped product (its listings stay together),
    ``n<nm>`` otherwise. It depends only on the product's own row, so adding batches never changes it."""
    ids = group_ids(products)
    return [f"n{nm}" if pd.isna(g) else f"g{g}" for nm, g in zip(products["nm"], ids, strict=True)]


def eval_mask(products: pd.DataFrame, eval_fraction: float, salt: str = "eval") -> np.ndarray:
    """True for products in the eval split; never used for training."""
    return np.array([_unit_interval(k, salt) < eval_fraction for k in split_keys(products)], dtype=bool)


def holdout_mask(products: pd.DataFrame, fraction: float) -> np.ndarray:
    """A held-out validation slice of the training split, for picking the best epoch."""
    return eval_mask(products, fraction, salt="holdout")
