"""What fine-tuning fits beside the towers: the lexical projection and the fusion weights.

Both see the training split only: the lexical projection is fitted on the training texts, the fusion weights
are chosen on the training holdout (products the towers were not trained on) when it has at least
``MIN_SELECTION_ROWS`` products, else on the whole training split, by the neighbour precision of every
proxy-task label and of ``dup_group`` (rows of one product). Eval products are never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ruclip.model import CLIP

from mm_pipeline.evaluation.labels import derive_labels
from mm_pipeline.inference.encoders import l2_normalize
from mm_pipeline.model.fusion import FusionChoice, choose_fusion_weights
from mm_pipeline.model.lexical import LexicalProjection
from mm_pipeline.model.split import NO_GROUP, group_codes
from mm_pipeline.model.train import BatchFiles, PairedData, encode_pairs, iter_texts

MIN_SELECTION_ROWS = 200


@dataclass(frozen=True)
class Channels:
    lexical: LexicalProjection
    fusion: FusionChoice
    selection: str  # which rows chose the weights: "holdout" or "training split"


def fit_channels(
    clip: CLIP, batches: Sequence[BatchFiles], pairs: PairedData, split: dict[str, np.ndarray]
) -> Channels:
    """Fit the lexical projection on ``split["train"]`` texts and choose the fusion weights.

    ``pairs`` are all products of ``batches`` (rows in batch order) and ``split`` the masks of
    :func:`mm_pipeline.model.train.training_split`. Raises ``ValueError`` when the training split has too few
    texts for the lexical projection.
    """
    lexical = LexicalProjection.fit(list(iter_texts(batches, split["train"])))
    selection = "holdout" if split["holdout"].sum() >= MIN_SELECTION_ROWS else "training split"
    rows = split["holdout"] if selection == "holdout" else ~split["eval"]
    products = pd.concat([pd.read_parquet(b.cleaned_text) for b in batches], ignore_index=True)[rows]
    image, text = encode_pairs(clip, pairs.subset(rows))
    channels = {
        "image": l2_normalize(image.numpy()),
        "text": l2_normalize(text.numpy()),
        "lexical": lexical.transform(products["text"].tolist()),
    }
    labels = derive_labels(products.reset_index(drop=True))
    targets = {task: labels[task].to_numpy(dtype=object) for task in labels}
    groups = group_codes(products)
    targets["duplicates"] = np.where(groups == NO_GROUP, None, groups).astype(object)
    fusion = choose_fusion_weights(channels, targets)
    return Channels(lexical, fusion, selection)
