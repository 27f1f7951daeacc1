"""Validation of one batch's embeddings file: what the ``embeddings`` asset check runs (no Dagster here).

A batch passes when every vector column it has (``image``, ``text``, ``fused`` and, where present,
``lexical``) holds finite vectors of one width per column, of the documented sizes, with the promised norm;
when it has exactly one row per accepted product of the batch; and when every row was made by the current
ONNX export (``model_version`` is ``<export version>-<variant>``).

Every reader of several batches' embeddings (index, metrics, publishing, ``mm-pipeline similar``) calls
:func:`require_model_version` first, and the served tables hold one row per ``nm`` (:func:`one_row_per_nm_problem`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mm_pipeline.inference.encoders import (
    BASE_FUSION_WEIGHTS,
    ONNX_VARIANTS,
    VECTOR_COLUMNS,
    variant_model_version,
)

REQUIRED_COLUMNS = ("image", "text", "fused")  # lexical is checked when present
NORM_TOLERANCE = 1e-3  # int8 towers, float32 normalization: observed errors are ~1e-6
# every channel is L2-normalized and ``fuse`` (mm_pipeline.inference.encoders) makes the fused vector unit too
UNIT_NORM = 1.0
DEFAULT_FUSED_CHANNELS = tuple(BASE_FUSION_WEIGHTS)  # an export whose manifest names no fusion weights


def expected_dims(manifest: dict, widths: dict[str, int]) -> dict[str, int]:
    """Documented widths for the export described by ``manifest`` (its ``manifest.json``).

    ``image`` and ``text`` are the towers' ``embed_dim``; ``fused`` concatenates the channels named in the
    manifest's ``fusion_weights`` (image and text when it names none); ``lexical`` has no width of its own in
    the manifest, so the file's (one width for every row) is taken as given. ``widths`` are the file's.
    """
    dims = {"image": int(manifest["embed_dim"]), "text": int(manifest["embed_dim"])}
    if "lexical" in widths:
        dims["lexical"] = widths["lexical"]
    channels = list(manifest.get("fusion_weights") or DEFAULT_FUSED_CHANNELS)
    if all(c in dims for c in channels):
        dims["fused"] = sum(dims[c] for c in channels)
    return dims


@dataclass
class BatchVectorReport:
    """The verdict on one batch; ``problems`` empty means it passed."""

    batch: str
    rows: int = 0
    dims: dict[str, int] = field(default_factory=dict)
    model_versions: list[str] = field(default_factory=list)
    max_norm_error: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        if self.passed:
            return f"{self.batch}: {self.rows} products, vectors valid"
        return f"{self.batch}: " + "; ".join(self.problems)


def _matrix(values: pa.ChunkedArray) -> tuple[np.ndarray | None, str | None]:
    """``[rows, width]`` float32 from a list column, or a problem when rows are null or of different widths."""
    array = values.combine_chunks()
    if array.null_count:
        return None, f"{array.null_count} null rows"
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
    elif pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        lengths = np.asarray(array.value_lengths().to_numpy(zero_copy_only=False))
        widths = np.unique(lengths)
        if len(widths) > 1:
            return None, f"rows of different widths {', '.join(str(w) for w in widths[:5])}"
        width = int(widths[0]) if len(widths) else 0
    else:
        return None, f"not a vector column ({array.type})"
    flat = np.asarray(array.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return flat.reshape(len(array), width), None


def check_batch_vectors(
    batch: str,
    path: Path | str,
    accepted_nm: Iterable[int],
    manifest: dict,
    norm_tolerance: float = NORM_TOLERANCE,
) -> BatchVectorReport:
    """Validate ``path`` (one batch's embeddings) against the batch's accepted products and the current export,
    described by its ``manifest.json`` (``model_version``, ``embed_dim``, optional ``fusion_weights``)."""
    model_version = str(manifest["model_version"])
    report = BatchVectorReport(batch)
    path = Path(path)
    if not path.exists():
        report.problems.append(f"no embeddings file {path}")
        return report
    table = pq.read_table(path)
    report.rows = table.num_rows
    columns = set(table.column_names)
    missing = [c for c in ("nm", "model_version", *REQUIRED_COLUMNS) if c not in columns]
    if missing:
        report.problems.append(f"missing columns {', '.join(missing)}")

    matrices = {}
    for column in (c for c in VECTOR_COLUMNS if c in columns):
        vectors, problem = _matrix(table.column(column))
        if problem:
            report.problems.append(f"{column}: {problem}")
        else:
            matrices[column] = vectors
            report.dims[column] = vectors.shape[1]
    fused_channels = manifest.get("fusion_weights") or DEFAULT_FUSED_CHANNELS
    absent_channels = [c for c in fused_channels if c not in columns]
    if absent_channels:
        report.problems.append(f"missing fused channel columns {', '.join(absent_channels)}")
    documented = expected_dims(manifest, report.dims)
    for column, vectors in matrices.items():
        if column in documented and vectors.shape[1] != documented[column]:
            report.problems.append(f"{column}: {vectors.shape[1]}-d, documented {documented[column]}-d")
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            report.problems.append(f"{column}: {int((~finite).sum())} rows with NaN or infinite values")
        norms = np.linalg.norm(vectors[finite], axis=1)
        error = float(np.abs(norms - UNIT_NORM).max()) if len(norms) else 0.0
        report.max_norm_error[column] = error
        if error > norm_tolerance:
            bad = int((np.abs(norms - UNIT_NORM) > norm_tolerance).sum())
            report.problems.append(f"{column}: {bad} rows whose norm is not 1 (worst off by {error:.3g})")

    if "nm" in columns:
        nm = table.column("nm").to_numpy()
        accepted = np.unique(np.fromiter(accepted_nm, dtype=np.int64))
        unique, counts = np.unique(nm, return_counts=True)
        if (counts > 1).any():
            report.problems.append(f"{int((counts > 1).sum())} products with more than one row")
        absent = np.setdiff1d(accepted, unique)
        extra = np.setdiff1d(unique, accepted)
        if len(absent):
            report.problems.append(f"{len(absent)} accepted products without vectors (e.g. nm {absent[0]})")
        if len(extra):
            report.problems.append(
                f"{len(extra)} rows for products not accepted in this batch (e.g. nm {extra[0]})"
            )

    if "model_version" in columns:
        versions = sorted({str(v) for v in table.column("model_version").unique().to_pylist()})
        report.model_versions = versions
        current = {variant_model_version(model_version, variant) for variant in ONNX_VARIANTS}
        stale = [v for v in versions if v not in current]
        if stale:
            report.problems.append(
                f"made by model {', '.join(stale)}, the current export is {model_version}: re-embed the batch"
            )
    return report


class MixedModelVersionsError(ValueError):
    """Embeddings of some batches were not made by the required model version; ``stale`` maps each such batch
    to the versions its rows carry, ``expected`` is the version required. The message names them all."""

    def __init__(self, stale: Mapping[str, Sequence[str]], expected: str):
        self.stale = {batch: list(versions) for batch, versions in stale.items()}
        self.expected = expected
        named = "; ".join(f"{b} ({', '.join(v) or 'no rows'})" for b, v in sorted(self.stale.items()))
        super().__init__(
            f"{len(self.stale)} batch(es) not embedded by model {expected}: {named}; re-embed them "
            "(materialize embeddings for those partitions) before their vectors are served with the others"
        )


def embeddings_model_versions(paths: Mapping[str, Path | str]) -> dict[str, list[str]]:
    """Batch name → the sorted distinct ``model_version`` values of its embeddings file (only that column is
    read; a file without the column has none)."""
    versions = {}
    for batch, path in paths.items():
        if "model_version" not in pq.read_schema(path).names:
            versions[batch] = []
            continue
        column = pq.read_table(path, columns=["model_version"]).column("model_version")
        versions[batch] = sorted(str(v) for v in column.unique().to_pylist() if v is not None)
    return versions


def require_model_version(paths: Mapping[str, Path | str], expected: str | None = None) -> str:
    """The one model version (``<export version>-<variant>``) every row of every batch's embeddings file in
    ``paths`` (batch name → file) carries, so vectors of two models are never served together.

    ``expected`` is the version required (the current export's, in the variant in use); ``None`` requires
    only that the batches agree, with what most batches carry as the reference (``""`` when no file has the
    column). Raises :class:`MixedModelVersionsError` naming every other batch, and ``ValueError`` when
    ``paths`` is empty.
    """
    if not paths:
        raise ValueError("no batch has embeddings")
    versions = {batch: tuple(found) for batch, found in embeddings_model_versions(paths).items()}
    if expected is None:
        counts = Counter(versions.values())
        reference = max(sorted(counts), key=counts.__getitem__)
        if len(reference) > 1:  # most files mix models themselves: name every such file
            raise MixedModelVersionsError(
                {b: v for b, v in versions.items() if len(v) > 1}, "one model version"
            )
        expected, wanted = (reference[0] if reference else ""), reference
    else:
        wanted = (expected,)
    stale = {batch: found for batch, found in versions.items() if found != wanted}
    if stale:
        raise MixedModelVersionsError(stale, expected)
    return expected


def repeated_nm(nm: Sequence[int] | np.ndarray, batch: Sequence[str] | np.ndarray) -> dict[int, list[str]]:
    """Products with more than one row: nm → the batches of its rows (sorted, one entry per row); empty when
    every nm occurs once. ``nm`` and ``batch`` are parallel columns of one table."""
    nm = np.asarray(nm, dtype=np.int64)
    values, counts = np.unique(nm, return_counts=True)
    repeated = values[counts > 1]
    if not len(repeated):
        return {}
    batch = np.asarray(batch, dtype=object)
    return {int(v): sorted(str(b) for b in batch[nm == v]) for v in repeated}


def one_row_per_nm_problem(nm: Sequence[int] | np.ndarray, batch: Sequence[str] | np.ndarray) -> str | None:
    """``None`` when every product has one row, else a one-line message naming the repeated products (up to
    five) and the batches they come from."""
    repeated = repeated_nm(nm, batch)
    if not repeated:
        return None
    shown = "; ".join(f"nm {v} in {', '.join(b)}" for v, b in list(repeated.items())[:5])
    more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
    return f"{len(repeated)} product(s) with more than one row: {shown}{more}"
