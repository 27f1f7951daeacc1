"""Text cleaning and the composition of the text the model reads.

Cleaning decodes HTML entities and removes markup, normalizes Unicode (NFKC), removes emoji, pictographs and
control characters, and collapses whitespace. Markup is what the standard library's HTML parser reads as a
tag of a real HTML element (``<b>``, ``</p>``, ``<br/>``, namespaced ``<o:p>``), a ``<!-- comment -->``, a
declaration or a processing instruction; ``script``/``style`` contents go with their tags. Everything else
stays: comparison signs, units and angle brackets in product text (``ростом <120 см``, ``<1/2 дюйма>``,
``<XL>``). It is idempotent: ``clean_text(clean_text(x)) == clean_text(x)``.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from html.parser import HTMLParser

import numpy as np
import pandas as pd

# WHATWG HTML elements, with the obsolete ones old exports still carry
HTML_ELEMENTS = frozenset(
    """a abbr acronym address area article aside audio b base basefont bdi bdo big blink blockquote body br
    button canvas caption center cite code col colgroup data datalist dd del details dfn dialog dir div dl dt
    em embed fieldset figcaption figure font footer form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup
    hr html i iframe img input ins kbd label legend li link main map mark marquee math menu meta meter nav
    nobr noembed noframes noscript object ol optgroup option output p param picture plaintext pre progress q
    rp rt ruby s samp script search section select slot small source span strike strong style sub summary
    sup svg table tbody td template textarea tfoot th thead time title tr track tt u ul var video wbr xmp""".split()  # noqa: SIM905
)
_HIDDEN_CONTENT = ("script", "style")
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


def _is_element(tag: str) -> bool:
    return tag in HTML_ELEMENTS or ":" in tag  # o:p, w:sdt: Word's namespaced elements


class _MarkupSpans(HTMLParser):
    """Where each event of the HTML parser starts in ``text`` and whether it is markup (dropped) or text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self._text = text
        self._line_starts = [0, *(i + 1 for i, ch in enumerate(text) if ch == "\n")]
        self._hidden = False  # inside <script> or <style>
        self.spans: list[tuple[int, bool]] = []
        self.feed(text)
        self.close()

    def _here(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _span(self, markup: bool) -> None:
        self.spans.append((self._here(), markup))

    def handle_starttag(self, tag, attrs):
        self._span(_is_element(tag))
        self._hidden = tag in _HIDDEN_CONTENT

    def handle_startendtag(self, tag, attrs):
        self._span(_is_element(tag))

    def handle_endtag(self, tag):
        self._span(_is_element(tag))
        self._hidden = False

    def handle_data(self, data):
        self._span(self._hidden)

    def handle_comment(self, data):
        self._span(self._text.startswith("<!--", self._here()))  # not a bogus comment such as "</1/2>"

    def handle_decl(self, decl):
        self._span(True)

    def unknown_decl(self, data):
        self._span(True)

    def handle_pi(self, data):
        self._span(True)

    def parse_html_declaration(self, i):
        position = self.getpos()
        try:
            return super().parse_html_declaration(i)
        except AssertionError:  # "<![" and no known section name: the stdlib asserts; it is text
            self.lineno, self.offset = position  # the failed scan moved the position
            self._span(False)
            return i + 3


def strip_markup(text: str) -> str:
    """``text`` with each piece of markup replaced by a space; every other character kept as it is."""
    if "<" not in text:
        return text
    spans = _MarkupSpans(text).spans
    if not spans:  # nothing the parser reports, e.g. "</>"
        return text
    kept = [text[: spans[0][0]]]  # before the first event, if the parser skipped any
    for (start, markup), (end, _) in zip(spans, [*spans[1:], (len(text), False)], strict=True):
        kept.append((" " if end > start else "") if markup else text[start:end])
    return "".join(kept)


def _unmark(text: str) -> str:
    """Unescape entities and strip markup until none is left. Every change shortens the text (an entity is
    longer than its character, markup than its space), so a round that does not has changed nothing."""
    while len(unmarked := strip_markup(html.unescape(text))) < len(text):
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


def shorten(text: str, limit: int = 80, *, say_length: bool = True) -> str:
    """``text`` cut to ``limit`` characters for a message, saying how long it was unless ``say_length`` is off."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)" if say_length else f"{text[:limit]}…"


def one_line(value, limit: int = 80) -> str:
    """``value`` as text on one line (white space folded), cut to ``limit`` characters."""
    return shorten(" ".join(str(value).split()), limit, say_length=False)


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


# the scripts of a Russian catalogue and of ruCLIP's tokenizer; letters of any other script (Georgian, Armenian,
# Chinese...) are likely to be unknown tokens to a BPE learned on such a catalogue
TOKENIZER_SCRIPTS = frozenset(("CYRILLIC", "LATIN"))
SCRIPT_CHECK_CHARS = 1000  # about three times what the text tower reads


@lru_cache(maxsize=65_536)
def _script(ch: str) -> str:
    """The Unicode script of a letter as the first word of its name (``CYRILLIC``, ``GEORGIAN``, ``CJK``)."""
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNNAMED"


def foreign_script(text: str) -> str | None:
    """The script most of the letters of ``text`` (its first ``SCRIPT_CHECK_CHARS``) are in, when that is not
    one of ``TOKENIZER_SCRIPTS`` (e.g. ``"Georgian"``, ``"CJK"``); ``None`` when most letters are Cyrillic or
    Latin or there are no letters."""
    scripts = Counter(_script(ch) for ch in text[:SCRIPT_CHECK_CHARS] if ch.isalpha())
    letters = sum(scripts.values())
    others = Counter({k: v for k, v in scripts.items() if k not in TOKENIZER_SCRIPTS})
    if not letters or 2 * sum(others.values()) <= letters:
        return None
    script = others.most_common(1)[0][0]
    return script if script == "CJK" else script.title()


def foreign_script_note(script: str) -> str:
    """The ``data_issues`` note of a product whose text is mostly in ``script``."""
    return f"text: mostly {script} script, which the tokenizer may not know"


def foreign_script_counts(texts: Iterable[str]) -> dict[str, int]:
    """Texts per :func:`foreign_script` (most frequent first); empty when every text is mostly Cyrillic/Latin."""
    counts = Counter(script for text in texts if (script := foreign_script(text)))
    return dict(counts.most_common())


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
    if "data_issues" in out.columns:  # accepted rows of the input contract: note texts in another script
        scripts = [foreign_script(text) for text in out["text"]]
        out["data_issues"] = [
            _with_note(issues, script and foreign_script_note(script))
            for issues, script in zip(out["data_issues"], scripts, strict=True)
        ]
    return out


def _with_note(issues, note: str | None) -> str:
    """``data_issues`` with ``note`` appended ("; "-joined), once."""
    issues = "" if is_missing(issues) else str(issues)
    if not note or note in issues.split("; "):
        return issues
    return f"{issues}; {note}" if issues else note


def length_stats(texts: pd.Series, context_tokens: int = 77) -> dict[str, float | int]:
    """Character/word length summary. ``over_context`` counts texts with more words than the context holds
    tokens after BOS/EOS: a lower bound of the texts the model truncates (a word is at least one BPE token)."""
    if len(texts) == 0:  # a batch whose every row was rejected: an empty column has no string dtype
        return {"count": 0}
    chars = texts.str.len().to_numpy()
    words = texts.str.split().str.len().fillna(0).to_numpy()
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
