"""The input contract of a catalogue batch and its validation.

A batch is a parquet file with Wildberries columns. Validation never drops a row silently: every input row
ends up either in ``accepted`` (typed, with its resolved image file) or in ``rejected`` (original values as
text plus ``source_file``, ``source_row`` and ``reject_reason``). Problems with the file itself raise
:class:`BatchFileError`.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mm_pipeline.prep.images import DEFAULT_MAX_PIXELS, ImageProblem, check_image
from mm_pipeline.prep.text import clean_text, is_missing, shorten

REQUIRED_COLUMNS = ("nm", "title")
TEXT_COLUMNS = ("title", "description", "category", "sub_category", "brend")
WB_COLUMNS = ("nm", *TEXT_COLUMNS, "isadult")
OPTIONAL_COLUMNS = ("price", "image_path")
REJECT_REASON = "reject_reason"
DATA_ISSUES = "data_issues"
IMAGE_FILE = "image_file"
SOURCE_ROW = "source_row"
SOURCE_FILE = "source_file"
RESERVED_COLUMNS = (SOURCE_FILE, SOURCE_ROW, IMAGE_FILE, DATA_ISSUES, REJECT_REASON)  # added by validation
MAX_TEXT_CHARS = 20_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SHOWN_CHARS = 80

_TRUE_WORDS = {"true", "1", "yes", "да", "t", "y"}
_FALSE_WORDS = {"false", "0", "no", "нет", "f", "n", ""}


class BatchFileError(ValueError):
    """The batch file as a whole is unusable; the one-line message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        problem = " ".join(problem.split())  # underlying exceptions may print several lines
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

    def rejection_lines(self, limit: int | None = None) -> list[str]:
        """``<file>: rejected nm=<nm> (row <row>): <reason>``, one line per rejected row."""
        rows = self.rejected.head(limit) if limit is not None else self.rejected
        return [
            f"{r.source_file}: rejected nm={one_line(r.nm)} (row {r.source_row}): {r.reject_reason}"
            for r in rows.itertuples()
        ]

    def reject_counts(self) -> dict[str, int]:
        if self.rejected.empty:
            return {}
        kinds = self.rejected[REJECT_REASON].str.split(":").str[0]
        return {str(k): int(v) for k, v in kinds.value_counts().items()}


def one_line(value, limit: int = _SHOWN_CHARS) -> str:
    """``value`` as text on one line, cut to ``limit`` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else f"{text[:limit]}…"


def read_batch(path: Path | str) -> pd.DataFrame:
    """Read a batch parquet file, raising :class:`BatchFileError` when it is not a usable batch."""
    path = Path(path)
    if not path.is_file():
        raise BatchFileError(path, "file not found")
    try:
        names = pq.read_schema(path).names
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise BatchFileError(path, f"duplicate column name(s) {', '.join(duplicated)}")
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise BatchFileError(path, f"not a readable parquet file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise BatchFileError(
            path, f"missing required column(s) {', '.join(missing)}; has {list(frame.columns)}"
        )
    reserved = [c for c in RESERVED_COLUMNS if c in frame.columns]
    if reserved:
        raise BatchFileError(
            path,
            f"reserved column name(s) {', '.join(reserved)}: validation adds them; rename them in the file",
        )
    return frame


def _shown(value) -> str:
    """``repr`` of an input value for a reject reason, cut to a readable length."""
    return shorten(repr(value), _SHOWN_CHARS)


def _parse_nm(value) -> int:
    if is_missing(value):
        raise ValueError("missing nm")
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            nm = int(value.strip())
        except ValueError:
            raise ValueError(f"bad type in column nm: {_shown(value)} is not an integer") from None
    elif isinstance(value, numbers.Real | Decimal) and not isinstance(value, bool):
        try:
            nm = int(value)
        except (OverflowError, ValueError):  # infinities, Decimal NaN
            nm = None
        if nm is None or nm != value:
            raise ValueError(f"bad type in column nm: {_shown(value)} is not an integer")
    else:
        raise ValueError(f"bad type in column nm: {type(value).__name__} {_shown(value)}")
    if not _INT64_MIN <= nm <= _INT64_MAX:
        raise ValueError(f"bad type in column nm: {_shown(value)} is out of int64 range")
    return nm


def _parse_text(value, column: str) -> tuple[str, str | None]:
    if is_missing(value):
        return "", None
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
        note = f"{column}: not valid UTF-8, undecodable bytes replaced" if "\ufffd" in text else None
    elif isinstance(value, str):
        text, note = value, None
    else:
        raise ValueError(f"bad type in column {column}: {type(value).__name__} {_shown(value)}")
    if len(text) > MAX_TEXT_CHARS:
        note = f"{column}: {len(text)} characters, truncated to {MAX_TEXT_CHARS}"
        text = text[:MAX_TEXT_CHARS]
    return text, note


def _parse_isadult(value) -> bool:
    if is_missing(value):
        return False
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise ValueError(f"bad type in column isadult: {_shown(value)} is not a boolean")


def _parse_price(value) -> tuple[float, str | None]:
    if is_missing(value):
        return math.nan, None
    try:
        price = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan, f"price: {_shown(value)} is not a number, treated as unknown"
    if math.isnan(price) or math.isinf(price) or price <= 0:
        return math.nan, f"price: {_shown(value)} is not a positive number, treated as unknown"
    return price, None


def resolve_image(images_dir: Path, nm: int, image_path) -> Path:
    """Where the row's image lives; raises ``ImageProblem`` for paths escaping ``images_dir``."""
    root = images_dir.resolve()
    relative, _ = _parse_text(image_path, "image_path")
    relative = relative.strip()
    if not relative:
        candidate = images_dir / f"{nm}.jpg"
    elif os.path.isabs(relative):
        raise ImageProblem(
            f"image_path {_shown(relative)} is absolute; it must be relative to the images folder"
        )
    else:
        candidate = images_dir / relative
    try:
        real = candidate.resolve()
    except (OSError, ValueError) as exc:  # e.g. an embedded NUL byte
        raise ImageProblem(f"bad image_path {_shown(relative)}: {exc}") from None
    if not real.is_relative_to(root):
        raise ImageProblem(f"image_path {_shown(relative)} points outside the images folder")
    return real


def validate_batch(
    path: Path | str,
    images_dir: Path | str,
    *,
    nm_owners: Mapping[int, str] | None = None,
    max_image_pixels: int = DEFAULT_MAX_PIXELS,
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
        except Exception as problem:  # whatever goes wrong with a row, it is rejected with a reason
            rejected_index.append(position)
            reasons.append(_reject_reason(problem))
            continue
        seen_in_batch[nm] = position
        accepted_rows.append(record)
        accepted_index.append(position)

    accepted = pd.DataFrame(accepted_rows, columns=_accepted_columns(frame))
    accepted = accepted.astype({"nm": "int64", "isadult": "bool", "price": "float64"})
    accepted[SOURCE_ROW] = pd.Series(accepted_index, dtype="int64")
    rejected = frame.iloc[rejected_index].map(_as_text).astype("string").reset_index(drop=True)
    rejected.insert(0, SOURCE_ROW, pd.Series(rejected_index, dtype="int64"))
    rejected.insert(0, SOURCE_FILE, pd.Series([path.name] * len(rejected_index), dtype="string"))
    rejected[REJECT_REASON] = pd.Series(reasons, dtype="string")
    return ValidationResult(path, accepted, rejected, missing_columns)


def _reject_reason(problem: Exception) -> str:
    expected = isinstance(problem, ValueError | ImageProblem)
    reason = str(problem) if expected else f"unexpected {type(problem).__name__}: {problem}"
    return " ".join(reason.split()) or type(problem).__name__


def _as_text(value) -> str | None:
    """A rejected cell as text (bytes decoded leniently); missing stays missing."""
    if is_missing(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


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
    if not clean_text(record["title"]):  # blank, or only markup, emoji or control characters
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


def _nm_values(path: Path) -> list[int | None]:
    """The parsed ``nm`` column of a batch file (``None`` where unparsable); empty when it cannot be read."""
    try:
        values = pq.read_table(path, columns=["nm"]).column("nm").to_pylist()
    except (pa.ArrowException, OSError, KeyError):
        return []
    parsed: list[int | None] = []
    for value in values:
        try:
            parsed.append(_parse_nm(value))
        except ValueError:
            parsed.append(None)
    return parsed


def earlier_nm_owners(
    batch_files: Sequence[Path],
    batch_file: Path,
    images_dir: Path | str,
    *,
    max_image_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[int, str]:
    """nm values of ``batch_file`` that an earlier batch file accepts, mapped to that file's batch name.

    A file accepts an nm when one of its rows for it passes row validation (image included); the earliest
    such file by name owns it, whatever the materialization order, so re-validating is deterministic. Only
    earlier rows whose nm also occurs in ``batch_file`` are validated. Unusable files own nothing.
    """
    batch_file, images_dir = Path(batch_file), Path(images_dir)
    wanted = {nm for nm in _nm_values(batch_file) if nm is not None}
    owners: dict[int, str] = {}
    for other in sorted({Path(f) for f in batch_files}, key=lambda f: f.name):
        if other.name >= batch_file.name or len(owners) == len(wanted):
            break
        positions = [i for i, nm in enumerate(_nm_values(other)) if nm in wanted and nm not in owners]
        if not positions:
            continue
        try:
            rows = read_batch(other).iloc[positions].to_dict("records")
        except BatchFileError:
            continue
        for row in rows:
            try:
                nm = _validate_row(row, images_dir, max_image_pixels)["nm"]
            except Exception:  # a row rejected there for any reason claims nothing
                continue
            owners.setdefault(nm, other.stem)
    return owners
