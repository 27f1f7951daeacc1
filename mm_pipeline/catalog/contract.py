"""The input contract of a catalogue batch and its validation.

A batch is a parquet file (or a dataset folder of part files) with Wildberries columns. Validation never
drops a row silently: every input row ends up either in ``accepted`` (typed, with its resolved image file) or
in ``rejected`` (original values as text plus ``source_file``, ``source_row`` and ``reject_reason``). Before
the row checks each contract column is cast to its contract type, judged by its type in the file; a lossless
cast keeps the row and every change of a value is noted in its ``data_issues``, a value that cannot be cast
rejects the row. Problems with the file itself raise :class:`BatchFileError`.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from price_parser import Price

from mm_pipeline.catalog.groups import DUP_GROUP, dup_group_ids
from mm_pipeline.prep.images import DEFAULT_MAX_PIXELS, ImageProblem, check_image
from mm_pipeline.prep.text import clean_text, is_missing, one_line, shorten

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

BATCH_SUFFIX = ".parquet"
# how exports spell an empty cell (pandas' astype(str), spreadsheets, SQL dumps), compared case-insensitively
MISSING_SPELLINGS = frozenset({"", "nan", "none", "null", "n/a", "na", "<na>", "nat", "#n/a"})
_TRUE_WORDS = {"true", "1", "1.0", "yes", "да", "t", "y"}
_FALSE_WORDS = {"false", "0", "0.0", "no", "нет", "f", "n"}
_ROUBLES = {"₽", "руб", "руб.", "р", "р.", "rub"}
_DIGITS = re.compile(r"[0-9]+")  # an nm given as text: plain ASCII digits
_EXACT_FLOAT_INTS = 2**53  # integral floats below this are exactly the integers a writer stored


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
    file_notes: tuple[str, ...] = ()  # how the file was read: index or renamed columns, part files

    @property
    def n_input(self) -> int:
        return len(self.accepted) + len(self.rejected)

    def rejection_lines(self, limit: int | None = None) -> list[str]:
        """``<file>: rejected nm=<nm> (row <row>): <reason>``, one line per rejected row; the file as it was
        given (``source``), as the summary line names it."""
        rows = self.rejected.head(limit) if limit is not None else self.rejected
        return [
            f"{self.source}: rejected nm={one_line(r.nm)} (row {r.source_row}): {r.reject_reason}"
            for r in rows.itertuples()
        ]

    def reject_counts(self) -> dict[str, int]:
        if self.rejected.empty:
            return {}
        kinds = self.rejected[REJECT_REASON].str.split(":").str[0]
        return {str(k): int(v) for k, v in kinds.value_counts().items()}


def batch_name(path: Path | str) -> str:
    """The partition key a batch file registers under: its name without ``.parquet``.

    Raises :class:`BatchFileError` naming the file when that name cannot be a Dagster dynamic partition key
    usable with ``--partition-range START...END``: it contains ``...`` or a control character, starts or
    ends with ``.``, or is empty.
    """
    path = Path(path)
    name = path.name.removesuffix(BATCH_SUFFIX)
    problems = []  # Dagster's own rule (no "...", no control characters), then what START...END needs
    if "..." in name:
        problems.append("contains '...', the partition-range separator")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        problems.append("contains control characters")
    if name.startswith(".") or name.endswith("."):
        problems.append("starts or ends with '.', which makes START...END ambiguous")
    if not name:
        problems.append("is empty")
    if problems:
        raise BatchFileError(
            path,
            f"batch name {name!r} {' and '.join(problems)}: it cannot be a partition key; rename the file",
        )
    return name


def read_batch(path: Path | str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Read a batch: a parquet file, or a folder of part files (Spark, Dask, pyarrow datasets).

    Returns the frame (one row per input row, positional index) and notes on how it was read. A pandas index
    stored in the file (``df.set_index("nm").to_parquet()``) becomes a column again, and contract columns
    spelled in another case (``NM``, ``Title``) take their contract names. Raises :class:`BatchFileError`
    when the file is not a usable batch.
    """
    path = Path(path)
    frame, notes = _read_frame(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        hints = "".join(f"; {hint}" for hint in _misspelt_columns(frame.columns, missing))
        raise BatchFileError(
            path, f"missing required column(s) {', '.join(missing)}; has {list(frame.columns)}{hints}"
        )
    reserved = [c for c in RESERVED_COLUMNS if c in frame.columns]
    if reserved:
        raise BatchFileError(
            path,
            f"reserved column name(s) {', '.join(reserved)}: validation adds them; rename them in the file",
        )
    return frame, notes


def _read_frame(path: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    notes: list[str] = []
    if not path.exists():
        raise BatchFileError(path, "file not found")
    try:
        if path.is_dir():
            dataset = pq.ParquetDataset(path)  # skips marker files: _SUCCESS, _metadata, hidden .crc
            if not dataset.files:
                raise BatchFileError(path, "is a folder with no parquet part files")
            notes.append(f"dataset folder: {len(dataset.files)} part file(s) read as one batch")
            schema = dataset.schema
        else:
            schema = pq.read_schema(path)
        duplicated = sorted({name for name in schema.names if schema.names.count(name) > 1})
        if duplicated:
            raise BatchFileError(path, f"duplicate column name(s) {', '.join(duplicated)}")
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise BatchFileError(path, f"not a readable parquet file ({type(exc).__name__}: {exc})") from None
    frame = _index_as_columns(path, frame, notes)
    return _contract_names(path, frame, notes), tuple(notes)


def _index_as_columns(path: Path, frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Named index levels the file stored (pandas metadata) as columns; an unnamed index is dropped."""
    named = [name for name in frame.index.names if name is not None]
    if named:
        clashes = [name for name in named if name in frame.columns]
        if clashes:
            raise BatchFileError(path, f"pandas index {', '.join(map(str, clashes))} is also a column")
        frame = frame.reset_index(level=named)
        notes.append(f"pandas index {', '.join(map(str, named))} read as column(s)")
    return frame.reset_index(drop=True)


def _contract_names(path: Path, frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Contract columns spelled in another case or with spaces around take the contract name."""
    renames = {}
    for wanted in (*WB_COLUMNS, *OPTIONAL_COLUMNS):
        names = [c for c in frame.columns if str(c).strip().casefold() == wanted]
        if len(names) > 1:
            raise BatchFileError(
                path, f"columns {', '.join(map(repr, names))} differ only in case or spaces; keep one"
            )
        if names and names[0] != wanted:
            renames[names[0]] = wanted
    if renames:
        notes.append(f"column(s) {', '.join(f'{k!r} read as {v}' for k, v in renames.items())}")
    frame = frame.rename(columns=renames)
    notes.extend(_misspelt_columns(frame.columns))
    return frame


def _misspelt_columns(columns: pd.Index, wanted_columns: Sequence[str] | None = None) -> list[str]:
    """A note per contract column (of ``wanted_columns``, default all) the file lacks whose name is close to
    one of the file's other columns (a typo such as ``categroy``); the column is not renamed, as the guess
    may be wrong."""
    contract = (*WB_COLUMNS, *OPTIONAL_COLUMNS)
    others = {str(c).strip().casefold(): c for c in columns if c not in contract}
    hints = []
    for wanted in (c for c in wanted_columns or contract if c not in columns):
        close = difflib.get_close_matches(wanted, list(others), n=1, cutoff=0.8)
        if close:
            hints.append(f"column {others[close[0]]!r} is not read as {wanted}: rename it if it is")
    return hints


def _shown(value) -> str:
    """``repr`` of an input value for a reject reason, cut to a readable length."""
    return shorten(repr(value), _SHOWN_CHARS)


def _plain(value):
    """A cell as a plain Python value: missing → None, integral floats → int, numpy scalars unwrapped.

    A parquet integer column with an empty cell comes back from pandas as floats; this undoes that cast, so
    such a column validates like the integer column it was.
    """
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT_INTS:
        return int(value)
    return value


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real | Decimal) and not isinstance(value, bool)


def _as_str(value) -> str | None:
    """Text and bytes as ``str`` (bytes decoded leniently), else None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _spells_missing(text: str) -> bool:
    return text.strip().casefold() in MISSING_SPELLINGS


def _cast_nm(value) -> tuple[int, str | None]:
    if value is None:
        raise ValueError("missing nm")
    text = _as_str(value)
    if text is not None:
        if _spells_missing(text):
            raise ValueError("missing nm" + (f": {_shown(text)} means missing" if text.strip() else ""))
        if not _DIGITS.fullmatch(text.strip()):
            signed = re.fullmatch(r"[+-][0-9]+", text.strip())
            problem = "has a sign; nm is written in plain digits" if signed else "is not an integer"
            raise ValueError(f"bad type in column nm: {_shown(value)} {problem}")
        nm, note = int(text), f"nm: text {_shown(text)} read as {int(text)}"
    elif _is_number(value):
        try:
            nm = int(value)
        except (OverflowError, ValueError):  # infinities, Decimal NaN
            nm = None
        if nm is None or nm != value:
            raise ValueError(f"bad type in column nm: {_shown(value)} is not an integer")
        note = None
    else:
        raise ValueError(f"bad type in column nm: {type(value).__name__} {_shown(value)}")
    if not _INT64_MIN <= nm <= _INT64_MAX:
        raise ValueError(f"bad type in column nm: {_shown(value)} is out of int64 range")
    if nm <= 0:  # a marketplace article number; 0 or a negative one is an export error
        raise ValueError(f"bad value in column nm: {_shown(value)} is not a positive integer")
    return nm, note


def _text_caster(column: str) -> Callable:
    def cast(value) -> tuple[str, str | None]:
        if value is None:
            return "", None
        text, notes = _as_str(value), []
        if isinstance(value, bytes) and "\ufffd" in text:
            notes.append(f"{column}: not valid UTF-8, undecodable bytes replaced")
        elif text is None and _is_number(value):
            text = str(value)
            notes.append(f"{column}: number {value} read as text")
        elif text is None:
            raise ValueError(f"bad type in column {column}: {type(value).__name__} {_shown(value)}")
        if text.strip() and _spells_missing(text):
            return "", f"{column}: {_shown(text)} read as missing"
        if len(text) > MAX_TEXT_CHARS:
            notes.append(f"{column}: {len(text)} characters, truncated to {MAX_TEXT_CHARS}")
            text = text[:MAX_TEXT_CHARS]
        return text, "; ".join(notes) or None

    return cast


def _cast_isadult(value) -> tuple[bool | None, str | None]:
    """A boolean, or None (unknown) for an empty cell: a missing label is never a default."""
    if isinstance(value, bool):
        return value, None
    text = _as_str(value)
    if value is None or (text is not None and _spells_missing(text)):
        shown = "missing" if value is None or not text.strip() else f"{_shown(text)} means missing"
        return None, f"isadult: {shown}, left unknown"
    if text is not None:
        word = text.strip().casefold()
        truth = True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else None
    else:
        truth = bool(value) if _is_number(value) and value in (0, 1) else None
    if truth is None:
        raise ValueError(f"bad type in column isadult: {_shown(value)} is not a boolean")
    return truth, f"isadult: {_shown(value)} read as {truth}"


def _cast_price(value) -> tuple[float, str | None]:
    if value is None:
        return math.nan, None
    text = _as_str(value)
    if text is not None:
        return parse_price(text)
    if not _is_number(value):
        return math.nan, f"price: {_shown(value)} is not a number, treated as unknown"
    try:
        price = float(value)
    except OverflowError:
        price = math.inf
    if math.isnan(price) or math.isinf(price) or price <= 0:
        return math.nan, f"price: {_shown(value)} is not a positive number, treated as unknown"
    return price, None


def _digits(text: str) -> str:
    return "".join(str(unicodedata.digit(ch)) for ch in text if unicodedata.digit(ch, None) is not None)


def parse_price(text: str) -> tuple[float, str | None]:
    """A price written as text: ``(roubles, note)``; ``(nan, note)`` when it is not a plain rouble price.

    Reads the usual Russian and international formats (``"1 999 ₽"``, ``"2 499,50"`` with any space,
    ``"1.999,00 руб."``, ``"1,299.00"``) with the ``price-parser`` library. Unknown, with a note saying why:
    another currency, extra words or signs (``"от 500"``, ``"-5"``, ``"1_000"``), and one separator followed by
    exactly three digits (``"1,299"``, ``"1.299"``: thousands or decimals). An empty cell is unknown without a
    note; every other outcome is noted.
    """
    if _spells_missing(text):
        return math.nan, f"price: {_shown(text)} means missing, left unknown" if text.strip() else None
    parsed = Price.fromstring(text)
    currency = parsed.currency or ""
    rest = text.replace(currency, "", 1) if currency else text
    residue = "".join(ch for ch in rest if not (ch.isspace() or ch in ",." or _digits(ch)))
    if parsed.amount is None or residue or _digits(text) != _digits(parsed.amount_text or ""):
        return math.nan, f"price: {_shown(text)} is not a plain price, treated as unknown"
    if currency and currency.casefold() not in _ROUBLES:
        return math.nan, f"price: {_shown(text)} is not in roubles, treated as unknown"
    separators = [ch for ch in parsed.amount_text if ch in ",."]
    if len(separators) == 1 and re.search(r"[,.]\d{3}$", parsed.amount_text):
        whole, _, tail = parsed.amount_text.partition(separators[0])
        return (
            math.nan,
            f"price: {_shown(text)} is ambiguous ({whole}{tail} or {whole}.{tail}), treated as unknown",
        )
    price = float(parsed.amount)
    if not math.isfinite(price) or price <= 0:
        return math.nan, f"price: {_shown(text)} is not a positive number, treated as unknown"
    return price, f"price: text {_shown(text)} read as {price}"


@dataclass
class CastRow:
    """One input row after the column casts: contract values, notes for data_issues, the first problem."""

    values: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


_CASTS: dict[str, Callable] = {
    "nm": _cast_nm,
    **{column: _text_caster(column) for column in (*TEXT_COLUMNS, "image_path")},
    "isadult": _cast_isadult,
    "price": _cast_price,
}
_ABSENT = {"nm": None, "isadult": None, "price": math.nan}  # a column the file lacks: unknown, not noted


def normalise_columns(frame: pd.DataFrame) -> list[CastRow]:
    """Cast each contract column of ``frame`` to its contract type, by the column's type in the file.

    Per row: ``nm`` int, text columns and ``image_path`` str ("" when missing), ``isadult`` bool or None
    (unknown), ``price`` float (NaN when unknown). Integral floats are integers (an integer column with an
    empty cell); numbers in text columns are text; "true"/"false"/"1"/"0"/"да"/"нет"/1.0/0.0 are booleans;
    missing-value spellings (``MISSING_SPELLINGS``) are missing. Every change is a note; a value that cannot
    be cast is the row's problem (its reject reason), the first one in column order.
    """
    rows = [CastRow() for _ in range(len(frame))]
    for column, cast in _CASTS.items():
        if column not in frame.columns:
            for row in rows:
                row.values[column] = _ABSENT.get(column, "")
            continue
        for row, value in zip(rows, frame[column].tolist(), strict=True):
            try:
                row.values[column], note = cast(_plain(value))
            except Exception as problem:  # whatever goes wrong with a value rejects its row, with a reason
                row.values[column], note = None, None
                row.problem = row.problem or _reject_reason(problem)
            if note:
                row.notes.append(note)
    return rows


def resolve_image(images_dir: Path, nm: int, image_path: str) -> Path:
    """Where the row's image lives; raises ``ImageProblem`` for paths escaping ``images_dir``."""
    root = images_dir.resolve()
    relative = image_path.strip()
    named = f"image_path {_shown(relative)}" if relative else f"image {nm}.jpg (no image_path)"
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
        raise ImageProblem(f"bad {named}: {exc}") from None
    if not real.is_relative_to(root):
        raise ImageProblem(f"{named} points outside the images folder")
    return real


def validate_batch(
    path: Path | str,
    images_dir: Path | str,
    *,
    nm_owners: Mapping[int, str] | None = None,
    max_image_pixels: int = DEFAULT_MAX_PIXELS,
) -> ValidationResult:
    """Split one batch into accepted and rejected rows.

    ``accepted``: contract columns typed (``nm`` int64, text str, ``isadult`` nullable boolean with NA for
    unknown, ``price`` float64 with NaN for unknown), extra columns unchanged, ``image_file`` and
    ``data_issues`` ("; "-joined notes, "" when none), ``source_row``. ``rejected``: the input values as
    text with ``source_file``, ``source_row`` and ``reject_reason``. ``nm_owners`` maps nm values already
    accepted in *other* batches to their batch name; such rows are rejected as cross-batch duplicates (the
    earlier batch keeps the product). Raises :class:`BatchFileError` when the file is unusable.
    """
    path, images_dir = Path(path), Path(images_dir)
    frame, file_notes = read_batch(path)
    missing_columns = tuple(c for c in (*WB_COLUMNS, "price") if c not in frame.columns)
    nm_owners = nm_owners or {}
    seen_in_batch: dict[int, int] = {}
    accepted_rows, accepted_index, rejected_index, reasons = [], [], [], []

    cast_rows = normalise_columns(frame)
    for position, (row, cast) in enumerate(zip(frame.to_dict("records"), cast_rows, strict=True)):
        try:
            record = _validate_row(row, cast, images_dir, max_image_pixels)
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
    accepted = accepted.astype({"nm": "int64", "isadult": "boolean", "price": "float64"})
    if DUP_GROUP in accepted.columns:
        accepted[DUP_GROUP] = dup_group_ids(accepted[DUP_GROUP])  # string ids, <NA> for no group
    accepted[SOURCE_ROW] = pd.Series(accepted_index, dtype="int64")
    rejected = frame.iloc[rejected_index].map(_as_text).astype("string").reset_index(drop=True)
    rejected.insert(0, SOURCE_ROW, pd.Series(rejected_index, dtype="int64"))
    rejected.insert(0, SOURCE_FILE, pd.Series([path.name] * len(rejected_index), dtype="string"))
    rejected[REJECT_REASON] = pd.Series(reasons, dtype="string")
    return ValidationResult(path, accepted, rejected, missing_columns, file_notes)


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


def _validate_row(row: dict, cast: CastRow, images_dir: Path, max_image_pixels: int) -> dict:
    if cast.problem:
        raise ValueError(cast.problem)
    record = {**row, **cast.values}
    if not clean_text(record["title"]):  # blank, a missing-value spelling, or only markup, emoji, controls
        spelled = [n.removeprefix("title: ") for n in cast.notes if n.startswith("title: ")]
        raise ValueError(": ".join(["empty title", *spelled[:1]]))
    given = record.pop("image_path")
    image = resolve_image(images_dir, record["nm"], given)
    check_image(image, max_pixels=max_image_pixels, shown=given.strip() or f"{record['nm']}.jpg")
    record[IMAGE_FILE] = str(image)
    record[DATA_ISSUES] = "; ".join(cast.notes)
    return record


def batch_signature(path: Path | str) -> str:
    """``<bytes>-<newest mtime ns>`` of a batch file, or of the files in a dataset folder: changes when the
    batch is replaced."""
    path = Path(path)
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    stats = [p.stat() for p in files]
    return f"{sum(s.st_size for s in stats)}-{max((s.st_mtime_ns for s in stats), default=0)}"


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
    try:
        frame, _ = read_batch(batch_file)
    except BatchFileError:
        return {}
    wanted = {nm for nm in _nm_values(frame) if nm is not None}
    owners: dict[int, str] = {}
    for other in sorted({Path(f) for f in batch_files}, key=lambda f: f.name):
        if other.name >= batch_file.name or len(owners) == len(wanted):
            break
        try:
            frame, _ = read_batch(other)
        except BatchFileError:
            continue
        positions = [i for i, nm in enumerate(_nm_values(frame)) if nm in wanted and nm not in owners]
        if not positions:
            continue
        rows = frame.iloc[positions]
        for row, cast in zip(rows.to_dict("records"), normalise_columns(rows), strict=True):
            try:
                nm = _validate_row(row, cast, images_dir, max_image_pixels)["nm"]
            except Exception:  # a row rejected there for any reason claims nothing
                continue
            owners.setdefault(nm, other.name.removesuffix(BATCH_SUFFIX))
    return owners


def nm_values(path: Path | str) -> list[int | None]:
    """The cast ``nm`` column of a batch or an accepted-products file (``None`` where it cannot be cast);
    empty when the file cannot be read or has no ``nm``."""
    try:
        frame, _ = _read_frame(Path(path))
    except BatchFileError:
        return []
    return _nm_values(frame) if "nm" in frame.columns else []


def _nm_values(frame: pd.DataFrame) -> list[int | None]:
    parsed: list[int | None] = []
    for value in frame["nm"].tolist():
        try:
            parsed.append(_cast_nm(_plain(value))[0])
        except ValueError:
            parsed.append(None)
    return parsed
