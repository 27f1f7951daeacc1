"""Text cleaning: crafted cases and hypothesis properties."""

import unicodedata

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_pipeline.prep.text import clean_products, clean_text, compose_text, length_stats

FRAGMENTS = ["<b>", "</p>", "&nbsp;", "&amp;lt;", "&quot;", "🔥", "\u200b", "\x00", "\n", "&", "<", ">"]
NOISY = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(FRAGMENTS)), max_size=40).map("".join)


def test_crafted_marketplace_noise():
    raw = "<p>ПЛАТЬЕ&nbsp;<b>женское</b></p>\n\n✨🔥 летнее  &quot;Лето&quot; 30°C №5\x07"
    assert clean_text(raw) == 'ПЛАТЬЕ женское летнее "Лето" 30°C No5'
    assert clean_text("&amp;lt;b&amp;gt;жирный&amp;lt;/b&amp;gt;") == "жирный"
    assert clean_text(None) == "" and clean_text("   ") == ""


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
    assert "Одежда" not in cleaned.loc[0, "text"]
    assert compose_text("Кроссовки Nike", "Nike", "") == "Кроссовки Nike"


def test_length_stats_flags_texts_over_the_context():
    stats = length_stats(pd.Series(["слово " * 100, "коротко", ""]))
    assert stats["count"] == 3 and stats["over_context"] == 1 and stats["empty"] == 1


@settings(max_examples=300, deadline=None)
@given(NOISY)
def test_cleaning_is_idempotent_and_safe(text):
    once = clean_text(text)
    assert clean_text(once) == once
    once.encode("utf-8")
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in once)
    assert once == once.strip() and "  " not in once
