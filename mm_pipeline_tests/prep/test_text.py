"""Text cleaning: crafted cases and hypothesis properties."""

import html
import unicodedata

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_pipeline.catalog.contract import validate_batch
from mm_pipeline.prep.text import clean_products, clean_text, compose_text, length_stats

FRAGMENTS = [
    "<b>",
    "</p>",
    "&nbsp;",
    "&amp;lt;",
    "&quot;",
    "🔥",
    "\u200b",
    "\x00",
    "\n",
    "&",
    "<",
    ">",
    "amp;",
    "<![",  # parser corners: marked sections, bogus comments, raw-text elements
    "</>",
    "<!--",
    "-->",
    "<script>",
    "<o:p>",
    "<1/2>",
]
# NFKC turns some into markup or lengthens them; Hangul jamo compose once a character between is dropped.
NORMALIZING = ["＆", "﹤", "＞", "&#xFF06;", "&#xFDFA;", "ﬃ", "\u1100", "\u1161", "#x3C;"]
NOISY = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(FRAGMENTS + NORMALIZING)), max_size=40).map(
    "".join
)
NESTED = st.recursive(
    NOISY,
    lambda inner: st.one_of(
        inner.map(html.escape),  # one more level of entities
        inner.map(lambda text: f"<i>{text}</i>"),
        st.tuples(inner, inner).map("".join),
    ),
    max_leaves=8,
)


def test_crafted_marketplace_noise():
    raw = "<p>ПЛАТЬЕ&nbsp;<b>женское</b></p>\n\n✨🔥 летнее  &quot;Лето&quot; 30°C №5\x07"
    assert clean_text(raw) == 'ПЛАТЬЕ женское летнее "Лето" 30°C No5'
    assert clean_text("&amp;lt;b&amp;gt;жирный&amp;lt;/b&amp;gt;") == "жирный"
    assert clean_text(None) == "" and clean_text("   ") == ""


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("&" + "amp;" * 25 + "lt;b&gt;x", "x"),
        ("&" + "amp;" * 500 + "lt;b&gt;y", "y"),
        ("＆amp;lt;b＞z", "z"),  # fullwidth & and > become markup only after NFKC
        ("&amp;#xFDFA;", "صلى الله عليه وسلم"),  # an entity that NFKC lengthens
    ],
)
def test_nested_escapes_unwind_to_a_fixpoint(raw, cleaned):
    assert clean_text(raw) == cleaned
    assert clean_text(cleaned) == cleaned


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        (
            "Подходит для детей ростом <120 см и весом >15 кг. <b>Состав:</b> хлопок 100%",
            "Подходит для детей ростом <120 см и весом >15 кг. Состав: хлопок 100%",
        ),
        ("Шланг садовый <1/2 дюйма> 20 м", "Шланг садовый <1/2 дюйма> 20 м"),
        (
            "Размер <XL>, кабель <USB-C>, a<3, x<=y",
            "Размер <XL>, кабель <USB-C>, a<3, x<=y",
        ),  # not HTML elements
        ("x &lt; 5 &amp;&amp; y &gt; 2", "x < 5 && y > 2"),
        ("</1/2>", "</1/2>"),  # a bogus comment to the parser, text to a reader
        ("<o:p></o:p>Текст<!-- комментарий --><br/>", "Текст"),  # Word's namespaced tags, comments
        ("<script>var x = '<b>';</script>Платье<style>p {}</style>", "Платье"),
        ("<![if !supportLists]>пункт<![endif]><!DOCTYPE html><?xml version='1.0'?>", "пункт"),
        ('<a href="x>y">ссылка</a>', "ссылка"),
        ("<![<b>x", "<![ x"),  # "<![" without a section name: the stdlib parser asserts, it is text
        ("</>", "</>"),
    ],
)
def test_only_real_markup_is_removed(raw, cleaned):
    assert clean_text(raw) == cleaned


def test_compose_keeps_parts_and_never_reads_labels():
    products = pd.DataFrame(
        {
            "title": ["Куртка мужская"],
            "brend": ["Nord"],
            "description": ["<br>Тёплая"],
            "category": ["Одежда"],
        }
    )
    cleaned = clean_products(products)
    assert cleaned.loc[0, "text"] == "Куртка мужская. Nord. Тёплая"
    assert cleaned.loc[0, "description_clean"] == "Тёплая"
    assert cleaned.loc[0, "characteristics_clean"] == ""
    assert "Одежда" not in cleaned.loc[0, "text"]
    assert compose_text("Кроссовки Nike", "Nike", "") == "Кроссовки Nike"


def test_characteristics_come_between_brand_and_description():
    products = pd.DataFrame(
        {
            "title": ["Куртка", "Платье", "Шарф"],
            "brend": ["Nord", "Zarina", ""],
            "description": ["Тёплая", "Летнее", ""],
            "characteristics": [
                "Цвет: синий; Состав: <b>хлопок</b>🔥; ручная стирка;",
                {"Длина": "миди", "Рукав": None},
                [("Материал", "шерсть"), ("Сезон", "зима")],  # how parquet map columns are read
            ],
            "color": ["синий", None, "серый"],
            "season": [None, "лето", None],
        }
    )
    cleaned = clean_products(products)
    assert list(cleaned["characteristics_clean"]) == [
        "Цвет: синий; Состав: хлопок; ручная стирка",  # the colour column repeats the card: said once
        "Длина: миди; Сезон: лето",
        "Материал: шерсть; Сезон: зима; Цвет: серый",
    ]
    assert list(cleaned["text"]) == [
        "Куртка. Nord. Цвет: синий; Состав: хлопок; ручная стирка. Тёплая",
        "Платье. Zarina. Длина: миди; Сезон: лето. Летнее",
        "Шарф. Материал: шерсть; Сезон: зима; Цвет: серый",
    ]
    only_colour = clean_products(products, characteristic_columns=("color",))
    assert "Сезон" not in only_colour.loc[1, "text"]


def test_label_columns_never_enter_the_text():
    products = pd.DataFrame(
        {
            "title": ["Куртка"],
            "brend": ["Nord"],
            "description": [""],
            "characteristics": [{"category": "Одежда", "Gender": "men", "Пол": "Мужской", "Цвет": "синий"}],
            "gender": ["men"],
            "sub_category": ["Куртки"],
        }
    )
    assert clean_products(products).loc[0, "text"] == "Куртка. Nord. Цвет: синий"
    with pytest.raises(ValueError, match="label column.*gender, sub_category"):
        clean_products(products, characteristic_columns=("color", "sub_category", "gender"))


def test_sample_catalogue_colour_reaches_the_text(small_sample):
    batch = sorted((small_sample / "batches").glob("*.parquet"))[0]
    cleaned = clean_products(validate_batch(batch, small_sample / "images").accepted)
    assert len(cleaned) > 100
    for colour, text in zip(cleaned["color"], cleaned["text"], strict=True):
        assert f"Цвет: {clean_text(colour)}" in text


def test_a_batch_with_no_accepted_row_cleans_to_no_text_and_counts_none():
    nothing = pd.DataFrame({"title": [None], "brend": ["Nord"], "description": [""], "category": ["Одежда"]})
    cleaned = clean_products(nothing.iloc[:0])  # every row of the batch was rejected
    assert len(cleaned) == 0 and length_stats(cleaned["text"]) == {"count": 0}


def test_length_stats_flags_texts_over_the_context():
    stats = length_stats(pd.Series(["слово " * 100, "слово " * 39, "коротко", ""]), context_tokens=40)
    assert stats["count"] == 4 and stats["over_context"] == 2 and stats["empty"] == 1
    assert length_stats(pd.Series(["слово " * 75]), context_tokens=77)["over_context"] == 0


@settings(max_examples=300, deadline=None)
@given(NESTED)
def test_cleaning_is_idempotent_and_safe(text):
    once = clean_text(text)
    assert clean_text(once) == once
    once.encode("utf-8")
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in once)
    assert once == once.strip() and "  " not in once
