"""Labels for the proxy tasks, derived from product cards.

Every task column holds strings or ``pd.NA`` (unknown); unknown is never guessed. Gender and age group are
only defined for clothes, shoes and headwear; they come from explicit columns when present (``gender``,
``ideal_for`` as in Flipkart, ``age_group``) and otherwise from audience words in the title, then in the
whole text, matched on pymorphy3 lemmas (Russian) or on tokens (English).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pymorphy3


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # "binary" | "multiclass"
    description: str
    positive_label: str | None = None  # binary tasks: scored class (None: the minority class)


TASKS = (
    TaskSpec("category", "multiclass", "product category"),
    TaskSpec(
        "sub_category", "multiclass", "sub-category; those with < 11 products merged into their category"
    ),
    TaskSpec("price_range", "multiclass", "quintile of log(price) on the evaluated rows, q1 cheapest"),
    TaskSpec("gender", "binary", "female / male, clothes and shoes only"),
    TaskSpec("age_group", "binary", "adult / child, clothes and shoes only", positive_label="child"),
    TaskSpec("isadult", "binary", "adult-only product (18+)", positive_label="adult"),
)

MIN_SUB_CATEGORY_PRODUCTS = 11
PRICE_BINS = 5

# ---------------------------------------------------------------- audience signals

FEMALE, MALE, CHILD, ADULT, ADULT_HINT, UNISEX = "female", "male", "child", "adult", "adult_hint", "unisex"

# ADULT is an explicit adult word (conflicts with child words); ADULT_HINT is a gendered adult word
# ("женский", "men") that child words override: "платье женское для девочки" is a child's dress.
RUSSIAN_LEMMAS = {
    "женский": {FEMALE, ADULT_HINT},
    "женщина": {FEMALE, ADULT_HINT},
    "дамский": {FEMALE, ADULT_HINT},
    "девушка": {FEMALE, ADULT_HINT},
    "мужской": {MALE, ADULT_HINT},
    "мужчина": {MALE, ADULT_HINT},
    "юноша": {MALE, ADULT_HINT},
    "девочка": {FEMALE, CHILD},
    "мальчик": {MALE, CHILD},
    "школьница": {FEMALE, CHILD},
    "школьник": {MALE, CHILD},
    "детский": {CHILD},
    "ребенок": {CHILD},
    "малыш": {CHILD},
    "младенец": {CHILD},
    "новорожденный": {CHILD},
    "подросток": {CHILD},
    "школьный": {CHILD},
    "взрослый": {ADULT},
    "унисекс": {UNISEX},
}
ENGLISH_TOKENS = {
    **dict.fromkeys(
        ["women", "woman", "womens", "ladies", "lady", "female", "females"], {FEMALE, ADULT_HINT}
    ),
    **dict.fromkeys(["men", "man", "mens", "gents", "male", "males"], {MALE, ADULT_HINT}),
    **dict.fromkeys(["girl", "girls"], {FEMALE, CHILD}),
    **dict.fromkeys(["boy", "boys"], {MALE, CHILD}),
    **dict.fromkeys(
        ["kid", "kids", "child", "children", "baby", "babies", "infant", "infants", "toddler", "toddlers"],
        {CHILD},
    ),
    **dict.fromkeys(["teen", "teens", "junior", "juniors"], {CHILD}),
    **dict.fromkeys(["adult", "adults"], {ADULT}),
    **dict.fromkeys(["unisex"], {UNISEX}),
    "couple": {ADULT},
}
# Abbreviations and codes trusted in explicit audience columns only ("муж" in free text may mean husband).
COLUMN_ONLY_TOKENS = {
    "жен": {FEMALE, ADULT_HINT},
    "муж": {MALE, ADULT_HINT},
    "дет": {CHILD},
    "f": {FEMALE, ADULT_HINT},
    "w": {FEMALE, ADULT_HINT},
    "m": {MALE, ADULT_HINT},
    "child": {CHILD},
}
# Only Cyrillic tokens starting like a keyword (or an irregular form: дети -> ребенок) are parsed.
_LEMMA_PREFIXES = frozenset(lemma[:3] for lemma in RUSSIAN_LEMMAS) | {"дет"}
_TOKEN = re.compile(r"[a-zа-яё]+")

_morph: pymorphy3.MorphAnalyzer | None = None


def morph() -> pymorphy3.MorphAnalyzer:
    """Module-level MorphAnalyzer, built on first use (loading the dictionaries takes about a second)."""
    global _morph
    if _morph is None:
        _morph = pymorphy3.MorphAnalyzer()
    return _morph


@lru_cache(maxsize=200_000)
def lemma(token: str) -> str:
    """Normal form of a lowercase Russian token, with ё written as е."""
    return morph().parse(token)[0].normal_form.replace("ё", "е")


@lru_cache(maxsize=8)  # a row's title and text are read for gender, then again for age
def audience_signals(text: str, explicit: bool = False) -> frozenset[str]:
    """Audience signals in ``text``.

    ``explicit`` marks an audience column (gender, ideal_for, age_group): its short codes (муж, f, m) are
    read, and an adult audience it lists is explicit ("Boys, Men" is for both ages, so age is unknown).
    """
    signals: set[str] = set()
    for token in _TOKEN.findall(text.lower().replace("ё", "е")):
        if explicit and token in COLUMN_ONLY_TOKENS:
            signals |= COLUMN_ONLY_TOKENS[token]
        elif token in ENGLISH_TOKENS:
            signals |= ENGLISH_TOKENS[token]
        elif token[:3] in _LEMMA_PREFIXES:
            signals |= RUSSIAN_LEMMAS.get(lemma(token), set())
    if explicit and ADULT_HINT in signals:
        signals = (signals - {ADULT_HINT}) | {ADULT}
    return frozenset(signals)


_UNKNOWN = "unknown"  # sources said something, but contradictory or unisex: stop looking, report NA


def decide_gender(signals: frozenset[str]) -> str | None:
    """female / male, ``_UNKNOWN`` for both or unisex, None when the signals say nothing about gender."""
    if UNISEX in signals or {FEMALE, MALE} <= signals:
        return _UNKNOWN
    if FEMALE in signals:
        return "female"
    if MALE in signals:
        return "male"
    return None


def decide_age(signals: frozenset[str]) -> str | None:
    """child / adult, ``_UNKNOWN`` for explicit adult plus child words, None when nothing is said."""
    if CHILD in signals:
        return _UNKNOWN if ADULT in signals else "child"
    if signals & {ADULT, ADULT_HINT}:
        return "adult"
    return None


def first_decision(explicit: list[frozenset[str]], title: str, text: str, decide) -> str | None:
    """Decision of the first source that says anything (explicit columns, title, whole text), reading the
    text only when needed; None (-> NA) when no source says anything or the first one is unknown."""
    sources = itertools.chain(explicit, (audience_signals(part) for part in (title, text)))
    for signals in sources:
        decision = decide(signals)
        if decision is not None:
            return None if decision == _UNKNOWN else decision
    return None


# ---------------------------------------------------------------- apparel

# Word starts (stems) of clothes, shoes and headwear; compounds such as "sportswear" or "sweatshirt" match
# their last part.
_APPAREL = re.compile(
    r"\b(?:одежд|обув|нижнее бель|головн\w* убор|шапк|кепк|панам|плать|сарафан|юбк|блуз|рубаш|футболк|майк"
    r"|топы?\b|брюк|джинс|шорт|леггин|лосин|колгот|носк|куртк|пальто|пуховик|плащ|жилет|пиджак|жакет|костюм"
    r"|комбинезон|свитер|джемпер|кардиган|толстовк|худи|свитшот|пижам|халат|купальн|плавк|трус|бюстгальт"
    r"|кроссовк|кеды|ботин|сапог|туфл|босонож|сандал|шлепан|тапоч|мокасин|лофер|слипон"
    r"|cloth|apparel|shoe|sneaker|boots?\b|sandal|slipper|dress|jeans?\b|trouser|shorts\b|skirt|legging|jacket"
    r"|coats?\b|sweater|hoodie|socks?\b|kurta|sarees?\b|frock|romper|bodysuit|hats?\b|caps?\b|tops?\b)"
    r"|wear\b|shirts?\b",
    re.IGNORECASE,
)
_NOT_APPAREL = re.compile(r"eyewear|постельн", re.IGNORECASE)


def is_apparel(*names: str) -> bool:
    """Clothes, shoes or headwear, judged from category / sub-category names (Russian or English)."""
    text = " ".join(name for name in names if isinstance(name, str))
    return bool(_APPAREL.search(text)) and not _NOT_APPAREL.search(text)


# ---------------------------------------------------------------- category, price, isadult


def merge_rare_sub_categories(
    category: pd.Series, sub_category: pd.Series, min_products: int = MIN_SUB_CATEGORY_PRODUCTS
) -> pd.Series:
    """Sub-categories with fewer than ``min_products`` products (per category) take their category's name."""
    rare = _in_rare_sub_category(category, sub_category, min_products)
    return sub_category.where(~rare, category).where(sub_category.notna())


def _in_rare_sub_category(category: pd.Series, sub_category: pd.Series, min_products: int) -> pd.Series:
    """bool per row: its sub-category has fewer than ``min_products`` products in its category (true where
    either name is missing)."""
    sizes = sub_category.groupby([category, sub_category], dropna=True).transform("size")
    return ~(sizes >= min_products)


def rare_sub_categories(
    products: pd.DataFrame, min_products: int = MIN_SUB_CATEGORY_PRODUCTS
) -> tuple[int, int]:
    """``(sub-categories, products in them)`` that :func:`derive_labels` reads as their category on
    ``products``: those with fewer than ``min_products`` products in their category
    (:func:`merge_rare_sub_categories`)."""
    category, sub_category = _clean_names(products["category"]), _clean_names(products["sub_category"])
    named = category.notna() & sub_category.notna()
    rows = _in_rare_sub_category(category, sub_category, min_products) & named
    return len(set(zip(category[rows], sub_category[rows], strict=True))), int(rows.sum())


def log_price(prices: pd.Series) -> pd.Series:
    """Regression target: log(price), NaN where the price is missing or not positive."""
    price = pd.to_numeric(pd.Series(prices), errors="coerce").astype(float)
    return np.log(price.where(price > 0))


def price_bin_edges(prices: pd.Series | np.ndarray, n_bins: int = PRICE_BINS) -> np.ndarray:
    """Inner edges (``n_bins - 1`` values, in log-price units) of equal-count bins of log(price).

    Computed on the given rows' positive prices (the caller passes the evaluation split); raises
    ``ValueError`` when there is none.
    """
    logs = log_price(pd.Series(np.asarray(prices, dtype=float))).dropna().to_numpy()
    if len(logs) == 0:
        raise ValueError("no positive prices to bin")
    return np.quantile(logs, np.linspace(0, 1, n_bins + 1)[1:-1])


def price_bin_labels(n_bins: int = PRICE_BINS) -> list[str]:
    return [f"q{i}" for i in range(1, n_bins + 1)]


def describe_price_bins(edges: np.ndarray) -> dict[str, str]:
    """Price ranges for reports, e.g. {"q1": "≤ 499", "q2": "499–999", ..., "q5": "> 4,999"}."""
    labels = price_bin_labels(len(edges) + 1)
    bounds = [f"{edge:,.0f}" for edge in np.exp(edges)]
    ranges = [f"≤ {bounds[0]}", *(f"{lo}–{hi}" for lo, hi in zip(bounds, bounds[1:], strict=False))]
    return dict(zip(labels, [*ranges, f"> {bounds[-1]}"], strict=True))


def price_range(prices: pd.Series, edges: np.ndarray) -> pd.Series:
    """q1..q5 by log-price ``edges`` (a price on an edge falls in the lower bin); NA without a positive price."""
    logs = log_price(prices)
    bins = np.searchsorted(edges, logs.to_numpy(), side="left")
    labels = np.array(price_bin_labels(len(edges) + 1), dtype=object)[np.minimum(bins, len(edges))]
    return pd.Series(labels, index=logs.index, dtype="string").where(logs.notna())


def _default_price_range(prices: pd.Series) -> pd.Series:
    if not (pd.to_numeric(prices, errors="coerce") > 0).any():
        return pd.Series(pd.NA, index=prices.index, dtype="string")
    return price_range(prices, price_bin_edges(prices))


_ADULT_VALUES = {"adult", "true", "1", "yes", "да", "18+"}
_NOT_ADULT_VALUES = {"not_adult", "false", "0", "no", "нет"}


def isadult_labels(values: pd.Series) -> pd.Series:
    normalized = values.astype("string").str.strip().str.lower()
    labels = pd.Series(pd.NA, index=values.index, dtype="string")
    labels[normalized.isin(_ADULT_VALUES)] = "adult"
    labels[normalized.isin(_NOT_ADULT_VALUES)] = "not_adult"
    return labels


# ---------------------------------------------------------------- all labels


def _clean_names(values: pd.Series) -> pd.Series:
    names = values.astype("string").str.strip()
    return names.where(names != "")


def audience_labels(products: pd.DataFrame, category: pd.Series, sub_category: pd.Series) -> pd.DataFrame:
    """gender and age_group for apparel rows (NA elsewhere), explicit columns first, then title, then text."""
    pairs = list(zip(category.fillna("").tolist(), sub_category.fillna("").tolist(), strict=True))
    apparel_by_pair = {pair: is_apparel(*pair) for pair in set(pairs)}
    rows = products.loc[[apparel_by_pair[pair] for pair in pairs]]
    text = rows["title"].fillna("") + " " + rows["description"].fillna("")
    if "text" in rows:
        text = rows["text"].fillna(text)

    def strings(values: pd.Series) -> list[str]:
        return values.astype("string").fillna("").tolist()

    def column(name: str) -> list[str]:
        return strings(rows[name]) if name in rows else [""] * len(rows)

    genders, ages = [], []
    for gender_value, ideal_for, age_value, title, full_text in zip(
        column("gender"),
        column("ideal_for"),
        column("age_group"),
        strings(rows["title"]),
        strings(text),
        strict=True,
    ):
        from_gender = audience_signals(gender_value, explicit=True)
        from_ideal_for = audience_signals(ideal_for, explicit=True)
        from_age = audience_signals(age_value, explicit=True)
        genders.append(first_decision([from_gender, from_ideal_for], title, full_text, decide_gender))
        ages.append(first_decision([from_age, from_ideal_for, from_gender], title, full_text, decide_age))
    labels = pd.DataFrame(
        {"gender": pd.Series(pd.NA, index=products.index, dtype="string"), "age_group": pd.NA}, dtype="string"
    )
    labels.loc[rows.index, "gender"] = pd.array(genders, dtype="string")
    labels.loc[rows.index, "age_group"] = pd.array(ages, dtype="string")
    return labels


def derive_labels(products: pd.DataFrame, price_bin_edges: np.ndarray | None = None) -> pd.DataFrame:
    """One column per task in ``TASKS`` (strings or NA), index aligned with ``products``.

    ``price_bin_edges`` (log-price, from :func:`price_bin_edges`) defaults to the quintiles of the given rows.
    """
    category = _clean_names(products["category"])
    raw_sub_category = _clean_names(products["sub_category"])
    sub_category = merge_rare_sub_categories(category, raw_sub_category)
    prices = products["price"]
    labels = pd.DataFrame(
        {
            "category": category,
            "sub_category": sub_category,
            "price_range": (
                _default_price_range(prices)
                if price_bin_edges is None
                else price_range(prices, price_bin_edges)
            ),
        },
        index=products.index,
    )
    labels = labels.join(audience_labels(products, category, raw_sub_category))
    labels["isadult"] = isadult_labels(products["isadult"])
    return labels[[task.name for task in TASKS]]
