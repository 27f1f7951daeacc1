"""The train/eval split is a property of each product: order and batching of the input do not change it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_pipeline.model.split import eval_mask, holdout_mask


def _products(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    groups = pd.Series(rng.integers(0, 40, n), dtype="object")
    groups[rng.random(n) < 0.6] = None  # most products have no re-listing group
    groups[rng.random(n) < 0.1] = "SKU-7"  # string ids mixed in
    return pd.DataFrame({"nm": rng.permutation(10**6)[:n] + 1000, "dup_group": groups})


def _by_nm(products: pd.DataFrame) -> dict[int, tuple[bool, bool]]:
    masks = zip(eval_mask(products, 0.3), holdout_mask(products, 0.1), strict=True)
    return dict(zip(products["nm"].tolist(), masks, strict=True))


def test_split_assignment_per_nm_ignores_order_and_batching():
    products = _products()
    whole = _by_nm(products)
    assert 0.15 < np.mean([e for e, _ in whole.values()]) < 0.45  # both sides are populated

    shuffled = _by_nm(products.sample(frac=1.0, random_state=1).reset_index(drop=True))
    assert shuffled == whole

    for seed in range(3):
        cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, len(products)), 3, replace=False))
        shuffled = products.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        batched = {}
        for start, end in zip([0, *cuts], [*cuts, len(products)], strict=True):
            batched |= _by_nm(shuffled.iloc[start:end].reset_index(drop=True))
        assert batched == whole

    # a re-listing group lands on one side, whichever batches its members arrive in
    grouped = products.assign(eval=[whole[nm][0] for nm in products["nm"]]).dropna(subset=["dup_group"])
    assert (grouped.groupby(grouped["dup_group"].astype(str))["eval"].nunique() == 1).all()
