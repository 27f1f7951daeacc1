"""Texts in a script the tokenizer never saw (Georgian, Armenian, Chinese titles in a Russian catalogue): they
are measured, noted in ``data_issues`` and never paired on their (meaningless) text vector (issue 16, item 8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_pipeline.inference.encoders import fuse, l2_normalize
from mm_pipeline.prep.text import clean_products, foreign_script, foreign_script_counts
from mm_pipeline.prep.tokens import MOSTLY_UNKNOWN_SHARE, TextTokenizer, train_bpe

RUSSIAN = [
    f"{kind} {colour} {word}"
    for kind in ("Шапка вязаная", "Кепка бейсбольная", "Панама летняя", "Берет шерстяной", "Платье миди")
    for colour in ("черная", "синяя", "красная", "белая")
    for word in ("зимняя", "мужская", "женская", "детская", "Ferz 56 см")
]
GEORGIAN = "შავი მატყლის ქუდი"  # black wool hat
ARMENIAN = "Սև բրդյա գլխարկ"  # black wool hat
CHINESE = "黑色羊毛帽子"  # black wool hat
OTHER_GEORGIAN = "წითელი ზაფხულის კაბა"  # red summer dress: unrelated to the hat


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> TextTokenizer:
    """A BPE learned on a Russian catalogue, as base_model learns the compact one."""
    folder = tmp_path_factory.mktemp("bpe")
    return TextTokenizer(train_bpe(RUSSIAN * 20, folder / "bpe.model", vocab_size=400), context_length=40)


def test_unknown_shares_of_russian_and_other_scripts(tokenizer):
    shares = tokenizer.unknown_shares(
        ["Шапка вязаная черная", GEORGIAN, ARMENIAN, CHINESE, f"{GEORGIAN} Шапка вязаная черная", ""]
    )
    assert shares[0] == 0 and shares[-1] == 0
    assert list(shares[1:4]) == [1.0, 1.0, 1.0]
    assert 0 < shares[4] < MOSTLY_UNKNOWN_SHARE  # 15 of 33 letters unknown: the Russian half still speaks
    assert tokenizer.mostly_unknown(["Кепка синяя", GEORGIAN, CHINESE + " Ferz"]).tolist() == [
        False,
        True,
        True,
    ]


def test_unknown_share_counts_only_what_the_model_reads(tokenizer):
    # 40-token context: a Russian text long enough to fill it hides a Georgian tail from the text tower
    long_russian = " ".join(["шапка вязаная черная"] * 30)
    assert tokenizer.unknown_shares([f"{long_russian} {GEORGIAN}"])[0] == 0
    assert tokenizer.unknown_shares([f"{GEORGIAN} {long_russian}"])[0] > 0


def test_every_unknown_title_gets_about_the_same_ids(tokenizer):
    """The fault itself: unrelated titles in an unseen script tokenize alike (word boundaries and UNK)."""
    ids = tokenizer.encode([GEORGIAN, ARMENIAN])
    assert (ids[0] == ids[1]).all()


@pytest.mark.parametrize(
    ("text", "script"),
    [
        (GEORGIAN, "Georgian"),
        (ARMENIAN, "Armenian"),
        (CHINESE, "CJK"),
        ("Χειμερινό καπέλο", "Greek"),
        (f"{CHINESE} Ferz", "CJK"),
        ("Шапка вязаная черная", None),
        ("Baseball cap Ferz", None),
        (f"{GEORGIAN}. Цвет: черный; Материал: шерсть, хлопок", None),  # mostly Cyrillic letters
        ("56 см, 100%", None),
        ("", None),
    ],
)
def test_foreign_script(text, script):
    assert foreign_script(text) == script


def test_clean_products_notes_texts_in_another_script():
    products = pd.DataFrame(
        {
            "nm": [1, 2, 3, 4],
            "title": [GEORGIAN, "Шапка вязаная", CHINESE, ARMENIAN],
            "brend": ["", "Ferz", "", ""],
            "description": ["", "", "", ""],
            "data_issues": ["", "", "price: -5 is not a price, read as unknown", None],
        }
    )
    cleaned = clean_products(products)
    issues = cleaned["data_issues"].tolist()
    assert issues[0] == "text: mostly Georgian script, which the tokenizer may not know"
    assert issues[1] == ""
    assert (
        issues[2]
        == "price: -5 is not a price, read as unknown; text: mostly CJK script, which the tokenizer may not know"
    )
    assert issues[3] == "text: mostly Armenian script, which the tokenizer may not know"
    assert clean_products(cleaned)["data_issues"].tolist() == issues  # noted once, however often cleaned
    assert foreign_script_counts(cleaned["text"]) == {"Georgian": 1, "CJK": 1, "Armenian": 1}
    assert "data_issues" not in clean_products(products.drop(columns="data_issues")).columns


def unit(rng, n, dim):
    return l2_normalize(rng.normal(size=(n, dim)).astype(np.float32))


def test_fuse_leaves_an_unusable_text_channel_out():
    rng = np.random.default_rng(0)
    image, text, lexical = unit(rng, 4, 8), unit(rng, 4, 8), unit(rng, 4, 6)
    text[1] = text[2] = text[0]  # rows 0-2: all-unknown titles, one text vector
    weights = {"image": 0.3, "text": 0.3, "lexical": 0.4}
    parts = {"image": image, "text": text, "lexical": lexical}
    unknown = np.array([True, True, True, False])
    plain = fuse(parts, weights)
    fused = fuse(parts, weights, unusable={"text": unknown})
    assert np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-6) and fused.shape == plain.shape
    assert np.allclose(fused[3], plain[3])  # a readable text keeps its fused vector
    assert np.allclose(fused[:3, 8:16], 0)  # the text block of the unknown texts is empty
    # their cosine is the weighted mean of their image and lexical cosines alone (weights 3:4)
    expected = (0.3 * image[0] @ image[1] + 0.4 * lexical[0] @ lexical[1]) / 0.7
    assert fused[0] @ fused[1] == pytest.approx(expected, abs=1e-5)
    assert plain[0] @ plain[1] > fused[0] @ fused[1] + 0.2  # the shared text vector made them look alike


def test_fuse_falls_back_to_the_image_where_the_other_channels_weigh_nothing():
    """The demo's weights (image 0): an unknown title also has an empty lexical vector, so the photo is the
    only evidence left; two such products are as close as their photos."""
    rng = np.random.default_rng(1)
    image, text, lexical = unit(rng, 3, 8), unit(rng, 3, 8), unit(rng, 3, 6)
    text[1] = text[0]
    lexical[:2] = 0  # out-of-vocabulary text: LexicalProjection gives zeros
    weights = {"image": 0.0, "text": 0.4, "lexical": 0.6}
    fused = fuse(
        {"image": image, "text": text, "lexical": lexical}, weights, unusable={"text": [True, True, False]}
    )
    assert np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-6)
    assert np.allclose(fused[:2, :8], image[:2], atol=1e-6) and np.allclose(fused[:2, 8:], 0)
    assert fused[0] @ fused[1] == pytest.approx(float(image[0] @ image[1]), abs=1e-5)
    assert np.allclose(fused[2], fuse({"image": image, "text": text, "lexical": lexical}, weights)[2])


def test_fuse_keeps_a_text_only_model_unit_length():
    rng = np.random.default_rng(2)
    text = unit(rng, 2, 8)
    fused = fuse({"text": text}, {"text": 1.0}, unusable={"text": [True, False]})
    assert np.allclose(fused, text, atol=1e-6)  # nothing else to fuse from: unchanged, still unit length
