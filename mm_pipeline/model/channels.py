"""What fine-tuning fits beside the towers: the lexical projection and the fusion weights.

Both see the training split only: the lexical projection is fitted on the training texts, the fusion weights
are chosen (:mod:`mm_pipeline.model.fusion`) on the training holdout — products neither the towers nor the
lexical projection were fitted to, so a channel that memorized its training rows does not look better than
it is — by the proxy-task labels and by duplicates: ``dup_group`` rows, or synthetic re-listings where a
catalogue has none. A holdout of fewer than
``MIN_SELECTION_ROWS`` products is too small to judge, and the whole training split is used instead. Eval
products are never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ruclip.model import CLIP

from mm_pipeline.evaluation.duplicates import count_groups
from mm_pipeline.evaluation.labels import derive_labels
from mm_pipeline.evaluation.relisting import MIN_GROUPS, RELISTED_PRODUCTS, make_relistings
from mm_pipeline.model.clip import encode_products
from mm_pipeline.model.fusion import DuplicateRows, FusionChoice, choose_fusion_weights
from mm_pipeline.model.lexical import LexicalProjection
from mm_pipeline.model.pairs import BatchFiles, PairedData, iter_texts
from mm_pipeline.model.split import group_codes
from mm_pipeline.prep.tokens import TextTokenizer

MIN_SELECTION_ROWS = 30


@dataclass(frozen=True)
class Channels:
    lexical: LexicalProjection
    fusion: FusionChoice
    selection: str  # which rows chose the weights: "holdout" or "training split"


def _channels(
    clip: CLIP, tokenizer: TextTokenizer, lexical: LexicalProjection, texts: list[str], images: np.ndarray
) -> dict[str, np.ndarray]:
    """Unit vectors of every channel for products given as texts and uint8 ``[N, H, W, 3]`` images."""
    return encode_products(clip, tokenizer, texts, images) | {"lexical": lexical.transform(texts)}


def duplicate_rows(
    clip: CLIP,
    tokenizer: TextTokenizer,
    lexical: LexicalProjection,
    products: pd.DataFrame,
    images: np.ndarray,
    channels: dict[str, np.ndarray],
) -> DuplicateRows:
    """The selection products' ``dup_group`` rows when they hold at least ``MIN_GROUPS`` groups, else the first
    ``RELISTED_PRODUCTS`` products with one synthetic re-listing each (as the duplicates metric does)."""
    groups = group_codes(products)
    if count_groups(groups) >= MIN_GROUPS:
        return DuplicateRows(channels, groups)
    count = min(len(products), RELISTED_PRODUCTS)
    texts, relisted_images = make_relistings(products["text"].tolist()[:count], images[:count])
    relisted = _channels(clip, tokenizer, lexical, texts, relisted_images)
    both = {c: np.concatenate([channels[c][:count], relisted[c]]) for c in channels}
    return DuplicateRows(both, np.tile(np.arange(count), 2))


def fit_channels(
    clip: CLIP,
    tokenizer: TextTokenizer,
    batches: Sequence[BatchFiles],
    pairs: PairedData,
    split: dict[str, np.ndarray],
) -> Channels:
    """Fit the lexical projection on ``split["train"]`` texts and choose the fusion weights.

    ``pairs`` are all products of ``batches`` (rows in batch order), ``split`` the masks of
    :func:`mm_pipeline.model.pairs.training_split`, ``tokenizer`` the model's. Raises ``ValueError`` when the
    training split has too few texts for the lexical projection.
    """
    lexical = LexicalProjection.fit(list(iter_texts(batches, split["train"])))
    selection = "holdout" if split["holdout"].sum() >= MIN_SELECTION_ROWS else "training split"
    rows = split["holdout"] if selection == "holdout" else ~split["eval"]
    products = pd.concat([pd.read_parquet(b.cleaned_text) for b in batches], ignore_index=True)[rows]
    products = products.reset_index(drop=True)
    images = pairs.images(np.flatnonzero(rows))
    channels = _channels(clip, tokenizer, lexical, products["text"].tolist(), images)
    labels = derive_labels(products)
    duplicates = duplicate_rows(clip, tokenizer, lexical, products, images, channels)
    fusion = choose_fusion_weights(
        channels, {task: labels[task].to_numpy(dtype=object) for task in labels}, duplicates
    )
    return Channels(lexical, fusion, selection)
