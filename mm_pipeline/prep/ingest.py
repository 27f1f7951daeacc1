"""One catalogue batch from its file into the store (no Dagster here): validated rows, cleaned text and image
tensors, each written atomically where :class:`~mm_pipeline.layout.Layout` says (what the ingest assets run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mm_pipeline.catalog.contract import REJECT_REASON, ValidationResult, earlier_nm_owners, validate_batch
from mm_pipeline.layout import Layout
from mm_pipeline.prep.images import TensorStoreStats, write_tensor_store
from mm_pipeline.prep.text import clean_products, foreign_script_counts, length_stats
from mm_pipeline.storage import atomic_dir, write_parquet

PREVIEW_ROWS = 20  # rejected rows shown with their reason
SAMPLE_ROWS = 5  # cleaned texts shown


@dataclass(frozen=True)
class ValidatedBatch:
    result: ValidationResult
    rows_with_data_issues: int  # accepted rows with a note in data_issues
    rejected_preview: list[dict]  # nm and reject_reason of the first PREVIEW_ROWS rejected rows


def validate_into_store(
    layout: Layout,
    batch: str,
    batch_file: Path,
    incoming: Sequence[Path],
    images_dir: Path | str,
    max_image_pixels: int,
) -> ValidatedBatch:
    """Validate ``batch_file`` (an nm accepted by an earlier file of ``incoming`` is rejected here) and write its
    accepted and rejected rows as one set (``layout.raw_dir(batch)``). Raises ``BatchFileError`` for a file
    that cannot be read as a batch."""
    owners = earlier_nm_owners(incoming, batch_file, images_dir, max_image_pixels=max_image_pixels)
    result = validate_batch(batch_file, images_dir, nm_owners=owners, max_image_pixels=max_image_pixels)
    with atomic_dir(layout.raw_dir(batch)) as folder:
        write_parquet(result.accepted, folder / layout.raw_accepted(batch).name)
        write_parquet(result.rejected, folder / layout.raw_rejected(batch).name)
    return ValidatedBatch(
        result,
        int((result.accepted["data_issues"] != "").sum()),
        result.rejected[["nm", REJECT_REASON]].head(PREVIEW_ROWS).to_dict("records"),
    )


@dataclass(frozen=True)
class CleanedText:
    path: Path
    rows: int
    length_stats: dict[str, float | int]  # prep.text.length_stats against the model's context
    other_scripts: dict[str, int]  # texts mostly in another script, per script
    sample: list[dict]  # nm and text of the first SAMPLE_ROWS products


def clean_into_store(layout: Layout, batch: str, context_tokens: int) -> CleanedText:
    """Clean the accepted rows of ``batch`` and write them (``layout.cleaned_text(batch)``), with length
    statistics against a text context of ``context_tokens`` tokens."""
    cleaned = clean_products(pd.read_parquet(layout.raw_accepted(batch)))
    path = write_parquet(cleaned, layout.cleaned_text(batch))
    return CleanedText(
        path,
        len(cleaned),
        length_stats(cleaned["text"], context_tokens=context_tokens),
        foreign_script_counts(cleaned["text"]),
        cleaned[["nm", "text"]].head(SAMPLE_ROWS).to_dict("records"),
    )


def tensors_into_store(
    layout: Layout,
    batch: str,
    size: int,
    workers: int,
    max_pixels: int,
    progress: Callable[[int, int], None] | None = None,
) -> TensorStoreStats:
    """Decode and letterbox the accepted rows' images of ``batch`` into ``layout.image_tensors(batch)``
    (uint8 ``[N, size, size, 3]``, rows in accepted order)."""
    files = pd.read_parquet(layout.raw_accepted(batch), columns=["image_file"])["image_file"].tolist()
    return write_tensor_store(
        files, layout.image_tensors(batch), size, workers=workers, max_pixels=max_pixels, progress=progress
    )
