"""Deterministic train/eval split by a hash of ``nm`` (or of ``dup_group``, so re-listings stay together)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def _unit_interval(key: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_keys(products: pd.DataFrame) -> list[str]:
    groups = products["dup_group"] if "dup_group" in products.columns else pd.Series(-1, index=products.index)
    groups = pd.to_numeric(groups, errors="coerce").fillna(-1).astype("int64")
    return [f"g{g}" if g >= 0 else f"n{nm}" for nm, g in zip(products["nm"], groups, strict=True)]


def eval_mask(products: pd.DataFrame, eval_fraction: float, salt: str = "eval") -> np.ndarray:
    """True for products in the eval split; never used for training."""
    return np.array([_unit_interval(k, salt) < eval_fraction for k in split_keys(products)], dtype=bool)


def holdout_mask(products: pd.DataFrame, fraction: float) -> np.ndarray:
    """A held-out validation slice of the training split, for picking the best epoch."""
    return eval_mask(products, fraction, salt="holdout")
