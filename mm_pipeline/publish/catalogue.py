"""The served catalogue (no Dagster here): the registered batches whose embeddings the current ONNX export
made, read as one table with one row per nm, checked batch by batch, and published as a new version.

Nothing here serves a mix. ``MixedModelVersionsError`` (:mod:`mm_pipeline.publish.vectors`) names the
batches embedded by another model, :class:`RepeatedProductsError` the products in two batches,
:class:`NoEmbeddingsError` says nothing is embedded yet; the Dagster layer turns each into a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mm_pipeline.inference.encoders import (
    export_variant_of,
    read_manifest,
    read_vectors,
    variant_model_version,
)
from mm_pipeline.layout import Layout
from mm_pipeline.publish.record import PublishedVersion, list_versions, publish_version
from mm_pipeline.publish.vectors import (
    BatchVectorReport,
    MixedModelVersionsError,
    check_batch_vectors,
    one_row_per_nm_problem,
    require_model_version,
)
from mm_pipeline.storage import pin

PUBLISHED_COLUMNS = ["nm", "model_version", "fused"]  # of each batch's embeddings, plus ``batch``


class NoEmbeddingsError(ValueError):
    """No registered batch has an embeddings file yet."""


class RepeatedProductsError(ValueError):
    """A product (nm) has rows in more than one served batch; the message names them."""


def read_onnx_manifest(layout: Layout, folder: Path | None = None) -> dict:
    """The export's ``manifest.json``; ``folder`` is a pinned version of ``layout.onnx_dir`` (default: now)."""
    return read_manifest(folder or layout.onnx_dir)


def model_version(layout: Layout, onnx_dir: Path, variant: str) -> str:
    """``<export version>-<variant>``: what the vectors of ``variant`` of the export pinned at ``onnx_dir``
    carry in their ``model_version`` column."""
    return variant_model_version(read_onnx_manifest(layout, onnx_dir)["model_version"], variant)


def embedded_batches(layout: Layout, registered: Iterable[str]) -> dict[str, Path]:
    """Registered batches with an embeddings file: batch → file, in batch-name order."""
    return {
        batch: layout.embeddings(batch) for batch in sorted(registered) if layout.embeddings(batch).exists()
    }


def served_batches(
    layout: Layout, registered: Iterable[str], current_version: Callable[[], str]
) -> dict[str, Path]:
    """:func:`embedded_batches`, every one made by ``current_version()`` (called once some batch is embedded).

    Raises :class:`NoEmbeddingsError`, or ``MixedModelVersionsError`` naming the stale batches."""
    paths = embedded_batches(layout, registered)
    if not paths:
        raise NoEmbeddingsError("no embeddings yet; materialize the embeddings partitions first")
    require_model_version(paths, current_version())
    return paths


def stale_batches(
    layout: Layout, registered: Iterable[str], current_version: Callable[[], str]
) -> dict[str, list[str]]:
    """Registered batches whose embeddings file was not made by ``current_version()``: batch → versions found."""
    try:
        served_batches(layout, registered, current_version)
    except NoEmbeddingsError:
        return {}
    except MixedModelVersionsError as exc:
        return exc.stale
    return {}


def catalogue_lookup(layout: Layout, paths: dict[str, Path]) -> tuple[pd.DataFrame, np.ndarray]:
    """``(lookup, fused)`` of the batches in ``paths`` (:func:`served_batches`): ``nm``, ``title``, ``batch`` and
    ``model_version`` per product, and their float32 ``[N, D]`` fused vectors, rows aligned.

    Raises :class:`RepeatedProductsError` when an nm has rows in two batches."""
    frames, vectors = [], []
    for batch, path in paths.items():
        nm, fused = read_vectors(path, "fused")
        titles = pd.read_parquet(layout.cleaned_text(batch), columns=["nm", "title_clean"])
        version = pd.read_parquet(path, columns=["model_version"])["model_version"].to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "nm": nm,
                    "title": titles.set_index("nm")["title_clean"].reindex(nm).to_numpy(),
                    "batch": batch,
                    "model_version": version,
                }
            )
        )
        vectors.append(fused)
    lookup = pd.concat(frames, ignore_index=True)
    problem = one_row_per_nm_problem(lookup["nm"], lookup["batch"])
    if problem:
        raise RepeatedProductsError(f"not serving the catalogue: {problem}; retire or fix the batch files")
    return lookup, np.concatenate(vectors).astype(np.float32)


@dataclass(frozen=True)
class RowCount:
    """The ``one_row_per_nm`` verdict on a served table (index lookup or published table)."""

    rows: int
    products: int
    problem: str | None  # None: one row per nm


def count_rows(table: pd.DataFrame) -> RowCount:
    """Rows and distinct products of ``table`` (columns ``nm`` and ``batch``) and what repeats, if anything."""
    problem = one_row_per_nm_problem(table["nm"], table["batch"])
    return RowCount(len(table), int(table["nm"].nunique()), problem)


def check_embedded_batch(layout: Layout, batch: str) -> BatchVectorReport:
    """One batch's embeddings against its accepted products and the current ONNX export's manifest."""
    accepted = pd.read_parquet(pin(layout.raw_dir(batch)) / layout.raw_accepted(batch).name, columns=["nm"])
    manifest = read_onnx_manifest(layout, pin(layout.onnx_dir))
    return check_batch_vectors(batch, layout.embeddings(batch), accepted["nm"].to_numpy(), manifest)


def read_served_vectors(layout: Layout, batches: Sequence[str]) -> pa.Table:
    """What consumers read: ``PUBLISHED_COLUMNS`` of every batch's embeddings plus ``batch`` (string), in batch
    order, with the embeddings' Arrow types (``fused`` a fixed-size list of float32, as ``embed`` writes it)."""
    tables = []
    for batch in batches:
        table = pq.read_table(layout.embeddings(batch), columns=PUBLISHED_COLUMNS)
        tables.append(table.append_column("batch", pa.array([batch] * len(table), pa.string())))
    return pa.concat_tables(tables)


def read_published_rows(layout: Layout) -> pd.DataFrame:
    """``nm`` and ``batch`` of every row of the current published version."""
    return pd.read_parquet(layout.published_embeddings, columns=["nm", "batch"])


@dataclass(frozen=True)
class Publication:
    """A published version with what its record says about it and the versions now kept (newest first)."""

    version: PublishedVersion
    kept: list[dict]  # manifests (mm_pipeline.publish.record.list_versions)

    def kept_rows(self) -> list[dict]:
        """One row per kept version: version, time, model versions, products, batches."""
        return [
            {
                "version": m["version"],
                "published_at": m["published_at"],
                "model_versions": ", ".join(m["model_versions"]),
                "products": m["products"],
                "batches": len(m["batches"]),
            }
            for m in self.kept
        ]


def publish_catalogue(
    layout: Layout, table: pa.Table, batches: Sequence[str], run_id: str, metrics: list, gates: list
) -> Publication:
    """Publish ``table`` (:func:`read_served_vectors` of ``batches``) as a new version whose manifest names the
    run, the model and export versions, the ONNX variant, the fused vector's width and fusion weights, the
    products per batch, and the ``metrics`` and ``gates`` it was judged on (records the caller read). Raises
    :class:`RepeatedProductsError` before writing anything when an nm has rows in two batches."""
    rows = table.select(["nm", "batch", "model_version"]).to_pandas()
    problem = one_row_per_nm_problem(rows["nm"], rows["batch"])
    if problem:
        raise RepeatedProductsError(f"not publishing: {problem}; retire or fix the batch files")
    per_batch = [(b, rows[rows["batch"] == b]) for b in batches]
    onnx_dir = pin(layout.onnx_dir)
    export = read_onnx_manifest(layout, onnx_dir)
    model_versions = sorted(rows["model_version"].unique())
    manifest = {
        "run_id": run_id,
        "model_versions": model_versions,
        "onnx_model_version": export["model_version"],
        "variants": [export_variant_of(onnx_dir, v) for v in model_versions],
        "fused_dims": table.schema.field("fused").type.list_size,
        "fusion_weights": export.get("fusion_weights"),
        "products": len(table),
        "batches": [
            {"batch": b, "products": len(f), "model_version": ", ".join(sorted(f["model_version"].unique()))}
            for b, f in per_batch
        ],
        "metrics": metrics,
        "gates": gates,
    }
    version = publish_version(layout, table, manifest)
    return Publication(version, list_versions(layout))
