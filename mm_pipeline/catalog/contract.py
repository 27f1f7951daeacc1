"""The input contract of a catalogue batch and its validation.

A batch is a parquet file with Wildberries columns. Validation never drops a row silently: every input row
ends up either in ``accepted`` (typed, with its resolved image file) or in ``rejected`` (original values as
text plus ``reject_reason``). Problems with the file itself raise :class:`BatchFileError`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mm_pipeline.prep.images import ImageProblem, check_image

REQUIRED_COLUMNS = ("nm", "title")
TEXT_COLUMNS = ("title", "description", "category", "sub_category", "brend")
WB_COLUMNS = ("nm", *TEXT_COLUMNS, "isadult")
OPTIONAL_COLUMNS = ("price", "image_path")
REJECT_REASON = "reject_reason"
DATA_ISSUES = "data_issues"
IMAGE_FILE = "image_file"
MAX_TEXT_CHARS = 20_000

_TRUE_WORDS = {"true", "1", "yes", "да", "t", "y"}
_FALSE_WORDS = {"false", "0", "no", "нет", "f", "n", ""}


class BatchFileError(ValueError):
    """The batch file as a whole is unusable; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass(frozen=True)
class ValidationResult:
    source: Path
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    missing_columns: tuple[str, ...]

    @property
    def n_input(self) -> int:
        return len(self.accepted) + len(self.rejected)

    def reject_counts(self) -> dict[str, int]:
        if self.rejected.empty:
            return {}
        kinds = self.rejected[REJECT_REASON].str.split(":").str[0]
        return {str(k): int(v) for k, v in kinds.value_counts().items()}


def read_batch(path: Path | str) -> pd.DataFrame:
    """Read a batch parquet file, raising :class:`BatchFileError` when it is not a usable batch."""
    path = Path(path)
    if not path.is_file():
        raise BatchFileError(path, "file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise BatchFileError(path, f"not a readable parquet file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise BatchFileError(
            path, f"missing required column(s) {', '.join(missing)}; has {table.column_names}"
        )
    return table.to_pandas()


def _is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _parse_nm(value) -> int:
    if _is_missing(value):
        raise ValueError("missing nm")
    if isinstance(value, bool):
        raise ValueError(f"bad type in column nm: {value!r}")
    if isinstance(value, int | float) or hasattr(value, "dtype"):
        as_float = float(value)
        if not as_float.is_integer():
            raise ValueError(f"bad type in column nm: {value!r} is not an integer")
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"bad type in column nm: {value!r} is not an integer") from None


def _parse_text(value, column: str) -> tuple[str, str | None]:
    if _is_missing(value):
        return "", None
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
        note = f"{column}: not valid UTF-8, undecodable bytes replaced" if "\ufffd" in text else None
    elif isinstance(value, str):
        text, note = value, None
    else:
        raise ValueError(f"bad type in column {column}: {type(value).__name__} {value!r}")
    if len(text) > MAX_TEXT_CHARS:
        note = f"{column}: {len(text)} characters, truncated to {MAX_TEXT_CHARS}"
        text = text[:MAX_TEXT_CHARS]
    return text, note


def _parse_isadult(value) -> bool:
    if _is_missing(value):
        return False
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise ValueError(f"bad type in column isadult: {value!r} is not a boolean")


def _parse_price(value) -> tuple[float, str | None]:
    if _is_missing(value):
        return math.nan, None
    try:
        price = float(value)
    except (TypeError, ValueError):
        return math.nan, f"price: {value!r} is not a number, treated as unknown"
    if math.isnan(price) or math.isinf(price) or price <= 0:
        return math.nan, f"price: {value!r} is not a positive number, treated as unknown"
    return price, None


def resolve_image(images_dir: Path, nm: int, image_path) -> Path:
    """Where the row's image lives; raises ``ImageProblem`` for paths escaping ``images_dir``."""
    root = images_dir.resolve()
    if _is_missing(image_path) or str(image_path).strip() == "":
        candidate = images_dir / f"{nm}.jpg"
    else:
        relative = str(image_path).strip()
        if os.path.isabs(relative):
            raise ImageProblem(
                f"image_path {relative!r} is absolute; it must be relative to the images folder"
            )
        candidate = images_dir / relative
    real = candidate.resolve()
    if not real.is_relative_to(root):
        raise ImageProblem(f"image_path {str(image_path)!r} points outside the images folder")
    return real


def validate_batch(
    path: Path | str,
    images_dir: Path | str,
    *,
    nm_owners: Mapping[int, str] | None = None,
    max_image_pixels: int = 40_000_000,
) -> ValidationResult:
    """Split one batch into accepted and rejected rows.

    ``nm_owners`` maps nm values already accepted in *other* batches to their batch name; such rows are
    rejected as cross-batch duplicates (the earlier batch keeps the product).
    """
    path, images_dir = Path(path), Path(images_dir)
    frame = read_batch(path)
    missing_columns = tuple(c for c in (*WB_COLUMNS, "price") if c not in frame.columns)
    nm_owners = nm_owners or {}
    seen_in_batch: dict[int, int] = {}
    accepted_rows, accepted_index, rejected_index, reasons = [], [], [], []

    for position, row in enumerate(frame.to_dict("records")):
        try:
            record = _validate_row(row, images_dir, max_image_pixels)
            nm = record["nm"]
            if nm in seen_in_batch:
                raise ValueError(f"duplicate nm: {nm} already in row {seen_in_batch[nm]} of this batch")
            if nm in nm_owners:
                raise ValueError(f"duplicate nm: {nm} already accepted in batch {nm_owners[nm]}")
        except (ValueError, ImageProblem) as problem:
            rejected_index.append(position)
            reasons.append(str(problem))
            continue
        seen_in_batch[nm] = position
        accepted_rows.append(record)
        accepted_index.append(position)

    accepted = pd.DataFrame(accepted_rows, columns=_accepted_columns(frame))
    accepted = accepted.astype({"nm": "int64", "isadult": "bool", "price": "float64"})
    accepted.insert(len(accepted.columns), "source_row", pd.Series(accepted_index, dtype="int64"))
    rejected = frame.iloc[rejected_index].astype("string").reset_index(drop=True)
    rejected.insert(0, "source_row", pd.Series(rejected_index, dtype="int64"))
    rejected[REJECT_REASON] = pd.Series(reasons, dtype="string")
    return ValidationResult(path, accepted, rejected, missing_columns)


def _accepted_columns(frame: pd.DataFrame) -> list[str]:
    extras = [c for c in frame.columns if c not in (*WB_COLUMNS, *OPTIONAL_COLUMNS)]
    return [*WB_COLUMNS, "price", *extras, IMAGE_FILE, DATA_ISSUES]


def _validate_row(row: dict, images_dir: Path, max_image_pixels: int) -> dict:
    notes: list[str] = []
    record = dict(row)
    record["nm"] = nm = _parse_nm(row.get("nm"))
    for column in TEXT_COLUMNS:
        record[column], note = _parse_text(row.get(column), column)
        if note:
            notes.append(note)
    if not record["title"].strip():
        raise ValueError("empty title")
    record["isadult"] = _parse_isadult(row.get("isadult"))
    record["price"], note = _parse_price(row.get("price"))
    if note:
        notes.append(note)
    image = resolve_image(images_dir, nm, row.get("image_path"))
    check_image(image, max_pixels=max_image_pixels)
    record.pop("image_path", None)
    record[IMAGE_FILE] = str(image)
    record[DATA_ISSUES] = "; ".join(notes)
    return record


def earlier_nm_owners(batch_files: list[Path], batch_file: Path) -> dict[int, str]:
    """nm values listed in batch files that sort before ``batch_file``, mapped to the first file's name.

    Ownership follows file order, not materialization order, so re-validating a batch is deterministic.
    Files that cannot be read are skipped here; their own partition reports them.
    """
    owners: dict[int, str] = {}
    for other in sorted(batch_files):
        if other.name >= batch_file.name:
            break
        try:
            values = pq.read_table(other, columns=["nm"]).column("nm").to_pylist()
        except (pa.ArrowException, OSError, KeyError):
            continue
        for value in values:
            try:
                owners.setdefault(_parse_nm(value), other.stem)
            except ValueError:
                continue
    return owners
