"""Deterministic train/eval split by a hash of ``nm`` (or of ``dup_group``, so re-listings stay together)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def _unit_interval(key: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


NO_GROUP = -1


def group_codes(products: pd.DataFrame) -> np.ndarray:
    """``dup_group`` as int codes (any id type: ints, SKU strings); -1 where a product has no group."""
    if "dup_group" not in products.columns:
        return np.full(len(products), NO_GROUP, dtype=np.int64)
    raw = products["dup_group"]
    text = raw.astype("string").str.strip()
    missing = raw.isna() | text.isin(["", str(NO_GROUP)])
    codes, _ = pd.factorize(text.where(~missing))
    return np.where(missing.to_numpy(), NO_GROUP, codes).astype(np.int64)


def split_keys(products: pd.DataFrame) -> list[str]:
    groups = group_codes(products)
    raw = products["dup_group"].astype("string").to_numpy() if "dup_group" in products.columns else groups
    return [f"g{r}" if g >= 0 else f"n{nm}" for nm, g, r in zip(products["nm"], groups, raw, strict=True)]


def eval_mask(products: pd.DataFrame, eval_fraction: float, salt: str = "eval") -> np.ndarray:
    """True for products in the eval split; never used for training."""
    return np.array([_unit_interval(k, salt) < eval_fraction for k in split_keys(products)], dtype=bool)


def holdout_mask(products: pd.DataFrame, fraction: float) -> np.ndarray:
    """A held-out validation slice of the training split, for picking the best epoch."""
    return eval_mask(products, fraction, salt="holdout")
