"""Text cleaning and the composition of the text the model reads.

Cleaning strips HTML tags and entities, normalizes Unicode (NFKC), removes emoji, pictographs and control
characters, and collapses whitespace. It is idempotent: ``clean_text(clean_text(x)) == clean_text(x)``.
"""

from __future__ import annotations

import html
import re
import unicodedata

import numpy as np
import pandas as pd

_TAG = re.compile(r"<[^<>]{0,200}>")
_WHITESPACE = re.compile(r"\s+")
_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"}
_KEEP_SYMBOLS = set("°№©®™")
_MAX_ROUNDS = 20
TEXT_PARTS = ("title_clean", "brend_clean", "description_clean")


def _keep(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category == "So":  # emoji, dingbats, pictographs
        return ch in _KEEP_SYMBOLS
    if category == "Sk":  # emoji skin-tone modifiers live high; ^ and ` stay
        return ord(ch) < 0x1F000
    return category not in _DROP_CATEGORIES


def _clean_once(text: str) -> str:
    text = _TAG.sub(" ", html.unescape(text))
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch if _keep(ch) else (" " if ch.isspace() else "") for ch in text)
    return _WHITESPACE.sub(" ", text).strip()


def clean_text(text: str | None) -> str:
    """Clean until nothing changes (nested escapes like ``&amp;lt;b&amp;gt;`` unwind fully)."""
    if not text:
        return ""
    for _ in range(_MAX_ROUNDS):
        cleaned = _clean_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text


def compose_text(title: str, brand: str, description: str) -> str:
    """The text the model reads: title, brand, then description. Category columns are labels, never input."""
    parts = [title]
    if brand and brand.lower() not in title.lower():
        parts.append(brand)
    if description:
        parts.append(description)
    return ". ".join(p.rstrip(". ") for p in parts if p)


def clean_products(products: pd.DataFrame) -> pd.DataFrame:
    """Add cleaned parts and the composed ``text`` column to accepted products (a copy)."""
    out = products.copy()
    for column, cleaned in zip(("title", "brend", "description"), TEXT_PARTS, strict=True):
        out[cleaned] = [clean_text(v) for v in out[column].fillna("")]
    out["text"] = [
        compose_text(t, b, d)
        for t, b, d in zip(out["title_clean"], out["brend_clean"], out["description_clean"], strict=True)
    ]
    return out


def length_stats(texts: pd.Series, context_words: int = 75) -> dict[str, float | int]:
    """Character/word length summary; ``over_context`` is a lower bound (a word is at least one BPE token)."""
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
        "over_context": int((words > context_words).sum()),
    }
