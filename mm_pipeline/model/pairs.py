"""The catalogue batches as image/text pairs for training and evaluation: which files a batch is
(:class:`BatchFiles`), every product as a row of memory-mapped token and image stores (:class:`PairedData`,
:func:`load_pairs`), its split columns and texts read from the files, and the train/holdout/eval split
(:func:`training_split`).

Memory holds per-product index arrays only: token ids and images stay in their stores on disk and are read
one minibatch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mm_pipeline.model.split import eval_mask, group_codes, group_ids, holdout_mask
from mm_pipeline.prep.images import open_tensor_store
from mm_pipeline.prep.tokens import TextTokenizer, open_token_store, write_token_store


@dataclass
class PairedData:
    """Products as rows of memory-mapped stores: token ids (int32) and images (uint8), one store per batch.

    ``group`` holds ``dup_group`` codes (``NO_GROUP`` = none): rows of one product, which training never
    treats as negatives of each other.
    """

    nm: np.ndarray
    token_stores: list[np.ndarray]
    stores: list[np.ndarray]
    store_of: np.ndarray
    row_of: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return len(self.nm)

    def _rows(self, stores: list[np.ndarray], index: np.ndarray) -> np.ndarray:
        return np.stack([stores[self.store_of[i]][self.row_of[i]] for i in index])

    def ids(self, index: np.ndarray) -> np.ndarray:
        """int64 ``[len(index), context]`` token ids."""
        return self._rows(self.token_stores, index).astype(np.int64)

    def images(self, index: np.ndarray) -> np.ndarray:
        """uint8 ``[len(index), H, W, 3]`` images."""
        return self._rows(self.stores, index)

    def subset(self, mask: np.ndarray) -> PairedData:
        """The rows selected by ``mask`` (bool ``[len(self)]`` or row indices), sharing the same stores."""
        return PairedData(
            self.nm[mask],
            self.token_stores,
            self.stores,
            self.store_of[mask],
            self.row_of[mask],
            self.group[mask],
        )


@dataclass(frozen=True)
class BatchFiles:
    """One catalogue batch as the model stage reads it: its cleaned texts (parquet) and image tensor store."""

    name: str
    cleaned_text: Path
    image_tensors: Path


SPLIT_COLUMNS = ("nm", "dup_group")


def load_split_columns(batches: Sequence[BatchFiles]) -> pd.DataFrame:
    """What the train/eval split needs of every product (nm, dup_group as contract ids, batch), without texts."""
    frames = []
    for batch in batches:
        columns = [c for c in SPLIT_COLUMNS if c in pq.read_schema(batch.cleaned_text).names]
        frame = pd.read_parquet(batch.cleaned_text, columns=columns).assign(batch=batch.name)
        frame["dup_group"] = group_ids(frame)  # the contract's type, whatever each file holds
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["batch"] = table["batch"].astype("category")
    return table


def iter_texts(batches: Sequence[BatchFiles], keep: np.ndarray, chunk_rows: int = 2048) -> Iterator[str]:
    """The texts of the products where ``keep`` is true (rows in batch order), read ``chunk_rows`` at a time."""
    offset = 0
    for batch in batches:
        for chunk in pq.ParquetFile(batch.cleaned_text).iter_batches(batch_size=chunk_rows, columns=["text"]):
            texts = chunk.column(0).to_pylist()
            yield from (t for t, k in zip(texts, keep[offset : offset + len(texts)], strict=True) if k)
            offset += len(texts)


def load_pairs(
    batches: Sequence[BatchFiles], tokenizer: TextTokenizer, token_dir: Path | str
) -> tuple[PairedData, pd.DataFrame]:
    """All products of ``batches`` as memory-mapped pairs, and their split columns (nm, dup_group, batch).

    Texts are tokenized chunk by chunk into token stores under ``token_dir`` (reused while the texts and the
    tokenizer stay the same); memory holds only per-product index arrays. Raises ``ValueError`` when a
    batch's texts and images differ in count.
    """
    token_stores, stores, store_of, row_of = [], [], [], []
    for position, batch in enumerate(batches):
        token_stores.append(open_token_store(write_token_store(batch.cleaned_text, tokenizer, token_dir)))
        store = open_tensor_store(batch.image_tensors)
        if len(store) != len(token_stores[-1]):
            raise ValueError(
                f"{batch.name}: {len(token_stores[-1])} texts but {len(store)} images; rematerialize it"
            )
        stores.append(store)
        store_of.append(np.full(len(store), position, dtype=np.int32))
        row_of.append(np.arange(len(store), dtype=np.int64))
    table = load_split_columns(batches)
    pairs = PairedData(
        table["nm"].to_numpy(),
        token_stores,
        stores,
        np.concatenate(store_of),
        np.concatenate(row_of),
        group_codes(table),
    )
    return pairs, table


MIN_HOLDOUT = 200
MAX_HOLDOUT_FRACTION = 0.25


def training_split(
    products: pd.DataFrame, eval_fraction: float, holdout_fraction: float
) -> dict[str, np.ndarray]:
    """Masks ``train`` / ``holdout`` / ``eval`` (bool ``[len(products)]``); eval is never trained on, holdout
    picks the best epoch and the fusion weights.

    The holdout takes ``holdout_fraction`` of the non-eval products, raised on small catalogues to reach
    ``MIN_HOLDOUT`` products but never above ``MAX_HOLDOUT_FRACTION`` (0 keeps it empty).
    """
    is_eval = eval_mask(products, eval_fraction)
    if holdout_fraction > 0:
        wanted = MIN_HOLDOUT / max(int((~is_eval).sum()), 1)
        holdout_fraction = max(holdout_fraction, min(wanted, MAX_HOLDOUT_FRACTION))
    is_holdout = ~is_eval & holdout_mask(products, holdout_fraction)
    return {"train": ~is_eval & ~is_holdout, "holdout": is_holdout, "eval": is_eval}
