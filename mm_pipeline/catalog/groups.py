"""The contract form of the optional ``dup_group`` column: one id per re-listing group (listings of one product).

Ids are pandas ``string`` values and ``<NA>`` means "no group", whatever the batch files hold: ints, SKU
strings, integral floats (``3.0``, what concatenating a batch without the column or with a null makes of an
int column) and ``-1``, blank or null for "no group". Validation stores the column in this form and every
reader of several batches (the train/holdout/eval split, duplicate ground truth) reads it through
:func:`dup_group_ids`, so adding a batch never changes another product's group or split.
"""

from __future__ import annotations

import math
import numbers
import re
from decimal import Decimal

import pandas as pd

from mm_pipeline.prep.text import is_missing

DUP_GROUP = "dup_group"
NO_GROUP_TEXT = frozenset({"", "-1", "nan", "none", "null", "<na>"})
_INTEGRAL_TEXT = re.compile(r"[+-]?\d{1,30}(\.0*)?")  # "3", "03", "3.0": group 3


def dup_group_id(value) -> str | None:
    """One ``dup_group`` cell as its id, or ``None`` for "no group"."""
    if is_missing(value):
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, numbers.Real | Decimal) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            return None
        value = int(value) if value == int(value) else value
    text = str(value).strip()
    if _INTEGRAL_TEXT.fullmatch(text):
        text = str(int(text.split(".")[0]))
    return None if text.lower() in NO_GROUP_TEXT else text


def dup_group_ids(values: pd.Series) -> pd.Series:
    """``values`` (a ``dup_group`` column of any dtype) as ``string`` ids with ``<NA>`` for "no group"; same
    index. ``3``, ``3.0``, ``"3"`` and ``" 3.0 "`` give ``"3"``; null, blank and ``-1`` give ``<NA>``."""
    return pd.Series([dup_group_id(v) for v in values], index=values.index, dtype="string")
