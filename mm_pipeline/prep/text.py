"""Text cleaning and the composition of the text the model reads.

Cleaning strips HTML tags and entities, normalizes Unicode (NFKC), removes emoji, pictographs and control
characters, and collapses whitespace. It is idempotent: ``clean_text(clean_text(x)) == clean_text(x)``.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

_TAG = re.compile(r"<[^<>]{0,200}>")
_WHITESPACE = re.compile(r"\s+")
_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"}
_KEEP_SYMBOLS = set("°№©®™")
_CHAR_TABLE_LIMIT = 65_536
TEXT_PARTS = ("title_clean", "brend_clean", "characteristics_clean", "description_clean")
DEFAULT_CHARACTERISTIC_COLUMNS = ("color", "material", "composition", "season", "country")
# how Wildberries names these characteristics on a card: the model reads Russian, not column names
CHARACTERISTIC_NAMES = {
    "color": "Цвет",
    "material": "Материал",
    "composition": "Состав",
    "season": "Сезон",
    "country": "Страна производства",
}
# Proxy-task labels: the model must never read them.
LABEL_COLUMNS = frozenset(
    ("category", "sub_category", "isadult", "price", "gender", "ideal_for", "age_group", "dup_group", "nm")
)
# the same labels as Wildberries names them inside free-form characteristics ("Пол: Женский")
_LABEL_KEYS = LABEL_COLUMNS | {"категория", "подкатегория", "пол", "цена", "возраст", "для взрослых", "18+"}


def _keep(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category == "So":  # emoji, dingbats, pictographs
        return ch in _KEEP_SYMBOLS
    if category == "Sk":  # emoji skin-tone modifiers live high; ^ and ` stay
        return ord(ch) < 0x1F000
    return category not in _DROP_CATEGORIES


class _CharTable(dict):
    """``str.translate`` table: each character's fate (kept, dropped or a space), decided once and cached."""

    def __missing__(self, code: int) -> str | None:
        ch = chr(code)
        fate = ch if _keep(ch) else (" " if ch.isspace() else None)
        if len(self) < _CHAR_TABLE_LIMIT:  # bounded memory whatever code points arrive
            self[code] = fate
        return fate


_CHAR_TABLE = _CharTable()


def _unmark(text: str) -> str:
    """Unescape entities and strip tags until none are left; every change shortens the text."""
    while (unmarked := _TAG.sub(" ", html.unescape(text))) != text:
        text = unmarked
    return text


def _clean_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", _unmark(text))
    text = text.translate(_CHAR_TABLE)
    return _WHITESPACE.sub(" ", text).strip()


def clean_text(text: str | None) -> str:
    """Clean until nothing changes (nested escapes like ``&amp;lt;b&amp;gt;`` unwind fully)."""
    if not text:
        return ""
    # Terminates: unmarking only shortens, and after round one NFKC can lengthen only what an entity just
    # produced (using up its '&'); every other change shortens, so (count of '&', length) falls each round.
    while (cleaned := _clean_once(text)) != text:
        text = cleaned
    return text


def is_missing(value) -> bool:
    """None, pandas' NA/NaT or a float NaN: an empty cell, whatever the column's type."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _clean_value(value) -> str:
    if is_missing(value):
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return clean_text(str(value))


def _characteristic_pairs(value) -> list[tuple]:
    """(name, value) pairs of a WB string ``"Цвет: синий; Состав: хлопок"``, a mapping or a list of pairs."""
    if is_missing(value):
        return []
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        halves = [part.partition(":") for part in value.split(";")]
        return [(name, rest) if colon else ("", name) for name, colon, rest in halves]
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, Iterable):  # parquet map columns arrive as lists of (key, value) tuples
        return [tuple(item) if isinstance(item, tuple) and len(item) == 2 else ("", item) for item in value]
    return [("", value)]


def _characteristics_text(pairs: Iterable[tuple]) -> str:
    """``"name: value; …"`` of cleaned pairs, once each, leaving out empty values and names of label columns."""
    rendered = []
    for name, value in pairs:
        name, value = _clean_value(name), _clean_value(value)
        pair = f"{name}: {value}" if name else value
        if value and name.casefold() not in _LABEL_KEYS and pair not in rendered:
            rendered.append(pair)
    return "; ".join(rendered)


def compose_text(title: str, brand: str, description: str, characteristics: str = "") -> str:
    """The text the model reads: title, brand, characteristics, then description. Labels are never input."""
    parts = [title]
    if brand and brand.lower() not in title.lower():
        parts.append(brand)
    parts += [characteristics, description]
    return ". ".join(p.rstrip(". ") for p in parts if p)


def clean_products(
    products: pd.DataFrame, characteristic_columns: Sequence[str] = DEFAULT_CHARACTERISTIC_COLUMNS
) -> pd.DataFrame:
    """Add cleaned parts and the composed ``text`` column to accepted products (a copy).

    Characteristics come from an optional ``characteristics`` column and from ``characteristic_columns``
    (rendered as ``column: value``); label columns are refused.
    """
    labels = sorted(LABEL_COLUMNS.intersection(characteristic_columns))
    if labels:
        raise ValueError(
            f"label column(s) {', '.join(labels)} cannot be characteristics: they are proxy labels"
        )
    out = products.copy()
    for column in ("title", "brend", "description"):
        out[f"{column}_clean"] = [clean_text(v) for v in out[column].fillna("")]
    free_form = out["characteristics"] if "characteristics" in out.columns else [None] * len(out)
    named = out[[c for c in characteristic_columns if c in out.columns]].to_dict("records")
    out["characteristics_clean"] = [
        _characteristics_text(
            [
                *_characteristic_pairs(value),
                *((CHARACTERISTIC_NAMES.get(c, c), v) for c, v in columns.items()),
            ]
        )
        for value, columns in zip(free_form, named, strict=True)
    ]
    out["text"] = [
        compose_text(t, b, d, c)
        for t, b, d, c in zip(
            out["title_clean"],
            out["brend_clean"],
            out["description_clean"],
            out["characteristics_clean"],
            strict=True,
        )
    ]
    return out


def length_stats(texts: pd.Series, context_tokens: int = 77) -> dict[str, float | int]:
    """Character/word length summary. ``over_context`` counts texts with more words than the context holds
    tokens after BOS/EOS: a lower bound of the texts the model truncates (a word is at least one BPE token)."""
    chars = texts.str.len().to_numpy()
    words = texts.str.split().str.len().fillna(0).to_numpy()
    if len(chars) == 0:
        return {"count": 0}
    return {
        "count": int(len(chars)),
        "chars_mean": round(float(chars.mean()), 1),
        "chars_p50": int(np.percentile(chars, 50)),
        "chars_p95": int(np.percentile(chars, 95)),
        "chars_max": int(chars.max()),
        "words_mean": round(float(words.mean()), 1),
        "empty": int((chars == 0).sum()),
        "over_context": int((words > context_tokens - 2).sum()),
    }
