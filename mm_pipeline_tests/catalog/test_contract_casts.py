"""Input contract, by kind of fault: column casts by the column's type in the file, missing-value spellings,
file shapes (pandas index, dataset folders, column names), batch names and prices. Hypothesis properties
where the kind has a shape."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_pipeline.catalog.contract import (
    MISSING_SPELLINGS,
    BatchFileError,
    batch_name,
    batch_signature,
    earlier_nm_owners,
    nm_values,
    parse_price,
    validate_batch,
)
from mm_pipeline.cli import main as cli_main
from mm_pipeline.prep.text import HTML_ELEMENTS, clean_products
from mm_pipeline_tests.conftest import good_rows, write_jpeg


def notes_of(result) -> dict[int, str]:
    return dict(zip(result.accepted["nm"], result.accepted["data_issues"], strict=True))


def reasons_of(result) -> dict[str, str]:
    return dict(zip(result.rejected["nm"], result.rejected["reject_reason"], strict=True))


# ------------------------------------------------------------------ casts by column type


def test_isadult_from_float_int_and_text_columns(catalogue):
    for values, dtype in (
        ([1.0, 0.0, np.nan, 2.0], "float64"),
        ([1, 0, None, 2], "Int64"),
        (["да", " FALSE ", "null", "может быть"], "str"),
    ):
        rows = good_rows(4).astype({"isadult": object})
        rows["isadult"] = pd.array(values, dtype=dtype)
        result = validate_batch(*catalogue(rows, name=f"isadult_{dtype}"))
        isadult = result.accepted.set_index("nm")["isadult"]
        assert isadult.dtype == "boolean"
        assert isadult[1000] == True and isadult[1001] == False and pd.isna(isadult[1002])  # noqa: E712
        notes = notes_of(result)
        assert "read as True" in notes[1000] and "read as False" in notes[1001]
        assert "left unknown" in notes[1002]  # a missing label is unknown, never a default
        assert reasons_of(result)["1003"].startswith("bad type in column isadult:")


def test_missing_isadult_column_is_unknown_not_false(catalogue):
    result = validate_batch(*catalogue(good_rows(2).drop(columns="isadult")))
    assert result.accepted["isadult"].isna().all() and "isadult" in result.missing_columns
    assert (result.accepted["data_issues"] == "").all()  # the whole column is absent: said once, per file


@pytest.mark.parametrize("dtype", ["int64", "float64", "Int64"])
def test_numbers_in_text_columns_are_text(catalogue, dtype):
    rows = good_rows(3)
    rows["brend"] = pd.array([361, 555, None] if dtype != "int64" else [361, 555, 7], dtype=dtype)
    rows["category"] = pd.array([1.5, 2.0, 3.25])
    result = validate_batch(*catalogue(rows))
    assert result.rejected.empty
    accepted = result.accepted.set_index("nm")
    assert accepted.loc[1000, "brend"] == "361" and accepted.loc[1001, "brend"] == "555"  # never "361.0"
    assert accepted["category"].tolist() == ["1.5", "2", "3.25"]
    assert "brend: number 361 read as text" in accepted.loc[1000, "data_issues"]


@pytest.mark.parametrize("spelling", sorted(MISSING_SPELLINGS - {""}))
def test_missing_value_spellings_are_missing_and_noted(catalogue, spelling):
    rows = good_rows(3)
    rows.loc[0, ["description", "brend", "category"]] = [spelling, f" {spelling.upper()} ", spelling]
    rows.loc[1, "title"] = spelling
    rows["price"] = [spelling, "1999", "2499"]
    result = validate_batch(*catalogue(rows))
    assert reasons_of(result) == {"1001": f"empty title: {spelling!r} read as missing"}
    first = result.accepted.set_index("nm").loc[1000]
    assert first["description"] == first["brend"] == first["category"] == "" and math.isnan(first["price"])
    for column in ("description", "brend", "category", "price"):
        assert f"{column}: " in first["data_issues"]
    text = clean_products(result.accepted).set_index("nm").loc[1000, "text"]
    assert spelling.casefold() not in text.casefold().split()


def test_text_that_cannot_be_cast_rejects_the_row(tmp_path):
    table = pa.table({"nm": [1, 2], "title": ["a", "b"], "brend": [True, None]})
    pq.write_table(table, tmp_path / "b.parquet")
    write_jpeg(tmp_path / "images" / "1.jpg")
    write_jpeg(tmp_path / "images" / "2.jpg")
    result = validate_batch(tmp_path / "b.parquet", tmp_path / "images")
    assert reasons_of(result) == {"1": "bad type in column brend: bool True"}
    assert result.accepted["brend"].tolist() == [""]


def test_nm_text_is_cast_strictly_and_noted(catalogue):
    rows = good_rows(6).astype({"nm": object})
    rows["nm"] = ["1000", "1_001", "١٠٠٢", "nan", " 1004 ", "-5"]
    result = validate_batch(*catalogue(rows, images_for=[1000, 1001, 1002, 1004]))
    assert notes_of(result) == {1000: "nm: text '1000' read as 1000", 1004: "nm: text ' 1004 ' read as 1004"}
    assert reasons_of(result) == {
        "1_001": "bad type in column nm: '1_001' is not an integer",
        "١٠٠٢": "bad type in column nm: '١٠٠٢' is not an integer",
        "nan": "missing nm: 'nan' means missing",
        "-5": "bad type in column nm: '-5' has a sign; nm is written in plain digits",
    }


def test_nm_is_a_positive_integer(catalogue):
    rows = good_rows(3)
    rows["nm"] = [1000, 0, -7]
    result = validate_batch(*catalogue(rows, images_for=[1000]))
    assert result.accepted["nm"].tolist() == [1000]
    assert reasons_of(result) == {
        "0": "bad value in column nm: 0 is not a positive integer",
        "-7": "bad value in column nm: -7 is not a positive integer",
    }


INTS = st.lists(st.one_of(st.none(), st.integers(-5, 5), st.integers(-(2**53) + 1, 2**53 - 1)), max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=INTS, column=st.sampled_from(["nm", "brend", "isadult", "price", "description"]))
def test_integral_float_column_validates_like_the_integer_column(tmp_path, values, column):
    """pandas reads an integer column with an empty cell as floats: that must change nothing."""
    images = write_jpeg(tmp_path / "images" / "x.jpg").parent
    rows = good_rows(len(values)).assign(image_path="x.jpg")
    results = []
    for dtype in ("Int64", "float64"):
        rows[column] = pd.array(values, dtype=dtype)
        path = tmp_path / f"{dtype}.parquet"
        rows.to_parquet(path, index=False)
        results.append(validate_batch(path, images))
    as_ints, as_floats = results
    pd.testing.assert_frame_equal(as_ints.accepted, as_floats.accepted)
    pd.testing.assert_series_equal(as_ints.rejected["reject_reason"], as_floats.rejected["reject_reason"])


# ------------------------------------------------------------------ file shapes


def test_nm_stored_as_the_pandas_index(catalogue, tmp_path):
    path, images = catalogue(good_rows(3))
    for name, frame in (
        ("range", good_rows(3).set_index("nm")),  # consecutive nm: stored as metadata only
        ("sparse", good_rows(3).assign(nm=[1000, 1002, 1001]).set_index("nm")),  # stored as a column
    ):
        frame.to_parquet(tmp_path / f"{name}.parquet")
        result = validate_batch(tmp_path / f"{name}.parquet", images)
        assert sorted(result.accepted["nm"]) == [1000, 1001, 1002] and result.rejected.empty
        assert result.file_notes == ("pandas index nm read as column(s)",)
        assert sorted(nm_values(tmp_path / f"{name}.parquet")) == [1000, 1001, 1002]
    good_rows(2).set_index("title", drop=False).to_parquet(tmp_path / "clash.parquet")
    with pytest.raises(BatchFileError, match="pandas index title is also a column"):
        validate_batch(tmp_path / "clash.parquet", images)
    good_rows(3).iloc[[2, 0]].to_parquet(tmp_path / "unnamed.parquet")  # an unnamed index: dropped
    assert validate_batch(tmp_path / "unnamed.parquet", images).accepted["nm"].tolist() == [1002, 1000]


def test_dataset_folders_are_one_batch(catalogue, tmp_path):
    _, images = catalogue(good_rows(6))
    spark = tmp_path / "spark.parquet"
    spark.mkdir()
    good_rows(3).to_parquet(spark / "part-00000-x.snappy.parquet", index=False)
    good_rows(3, start=1003).to_parquet(spark / "part-00001-x.snappy.parquet", index=False)
    (spark / "_SUCCESS").write_bytes(b"")
    (spark / ".part-00000-x.snappy.parquet.crc").write_bytes(b"crc")
    pq.write_to_dataset(pa.Table.from_pandas(good_rows(6), preserve_index=False), tmp_path / "ds.parquet")
    for folder in (spark, tmp_path / "ds.parquet"):
        result = validate_batch(folder, images)
        assert sorted(result.accepted["nm"]) == list(range(1000, 1006)), folder
        assert "part file(s) read as one batch" in result.file_notes[0]
    before = batch_signature(spark)
    good_rows(2, start=1003).to_parquet(spark / "part-00001-x.snappy.parquet", index=False)
    assert batch_signature(spark) != before  # a replaced part file is a changed batch
    empty = tmp_path / "empty.parquet"
    empty.mkdir()
    (empty / "_SUCCESS").write_bytes(b"")
    with pytest.raises(BatchFileError, match="is a folder with no parquet part files"):
        validate_batch(empty, images)


def test_column_names_in_another_case(catalogue, tmp_path):
    _, images = catalogue(good_rows(2))
    good_rows(2).rename(columns={"nm": "NM", "title": "Title", "brend": " Brend "}).to_parquet(
        tmp_path / "cased.parquet", index=False
    )
    result = validate_batch(tmp_path / "cased.parquet", images)
    assert len(result.accepted) == 2 and result.accepted["brend"].tolist() == ["Zarina", "Zarina"]
    assert result.file_notes == ("column(s) 'NM' read as nm, 'Title' read as title, ' Brend ' read as brend",)
    good_rows(2).assign(Title="other").to_parquet(tmp_path / "both.parquet", index=False)
    with pytest.raises(BatchFileError, match="columns 'title', 'Title' differ only in case or spaces"):
        validate_batch(tmp_path / "both.parquet", images)


def test_a_misspelt_column_is_named_but_not_guessed(catalogue, tmp_path):
    """A contract column the file lacks, beside a column of a close name: left unknown, with a note naming the
    likely typo (a guess is never applied); a required one fails the file with the same hint."""
    _, images = catalogue(good_rows(2))
    good_rows(2).rename(columns={"category": "categroy"}).to_parquet(tmp_path / "typo.parquet", index=False)
    result = validate_batch(tmp_path / "typo.parquet", images)
    assert result.file_notes == ("column 'categroy' is not read as category: rename it if it is",)
    assert "category" in result.missing_columns and result.accepted["categroy"].tolist() == ["Одежда"] * 2
    good_rows(2).rename(columns={"title": "tittle"}).to_parquet(tmp_path / "title.parquet", index=False)
    with pytest.raises(
        BatchFileError, match="missing required column.s. title; .*column 'tittle' is not read as title"
    ):
        validate_batch(tmp_path / "title.parquet", images)
    good_rows(2).assign(price_rub=1.0).to_parquet(tmp_path / "other.parquet", index=False)
    assert validate_batch(tmp_path / "other.parquet", images).file_notes == ()  # not close to a contract name


def test_cross_batch_owners_read_any_batch_shape(catalogue, tmp_path):
    path, images = catalogue(good_rows(2), name="b_later")
    earlier = tmp_path / "a_earlier.parquet"
    good_rows(2).set_index("nm").to_parquet(earlier)
    assert earlier_nm_owners([earlier, path], path, images) == {1000: "a_earlier", 1001: "a_earlier"}


# ------------------------------------------------------------------ batch names


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("wb_export...v2.parquet", "contains '...', the partition-range separator"),
        ("wb_export..parquet", "starts or ends with '.'"),
        ("tab\tname.parquet", "contains control characters"),
    ],
)
def test_batch_names_that_cannot_be_partition_keys(name, problem):
    with pytest.raises(BatchFileError) as info:
        batch_name(Path("incoming") / name)
    assert str(info.value).startswith(f"incoming/{name}: batch name") and problem in str(info.value)
    assert "rename the file" in str(info.value)


@pytest.mark.parametrize("name", ["batch_000", "выгрузка 2024-05-01 (1)", "wb.export.v2", "a..b"])
def test_usable_batch_names(name):
    assert batch_name(f"incoming/{name}.parquet") == name


# ------------------------------------------------------------------ prices


@pytest.mark.parametrize(
    ("text", "price"),
    [
        ("1999", 1999.0),
        ("1 999 ₽", 1999.0),
        ("2\u00a0499,50", 2499.5),
        ("1\u202f999 руб.", 1999.0),
        ("1.999,00 руб.", 1999.0),
        ("1,299.00", 1299.0),
        ("199,9 р.", 199.9),
        ("12 345 678,90 RUB", 12345678.9),
    ],
)
def test_price_formats_are_read_and_noted(text, price):
    value, note = parse_price(text)
    assert value == price and note == f"price: text {text!r} read as {price}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1,299", "is ambiguous (1299 or 1.299)"),
        ("1.299", "is ambiguous (1299 or 1.299)"),
        ("1_000", "is not a plain price"),
        ("от 500 руб", "is not a plain price"),
        ("-5", "is not a plain price"),
        ("1e3", "is not a plain price"),
        ("$12.99", "is not in roubles"),
        ("12,99 €", "is not in roubles"),
        ("0", "is not a positive number"),
        ("дорого", "is not a plain price"),
    ],
)
def test_ambiguous_or_foreign_prices_are_unknown_with_a_note(text, why):
    value, note = parse_price(text)
    assert math.isnan(value) and note.startswith(f"price: {text!r} {why}")


SPACES = st.sampled_from([" ", "\u00a0", "\u202f", ""])


@given(kopecks=st.integers(1, 10**10), space=SPACES, sign=st.sampled_from(["", " ₽", " руб.", "р."]))
def test_russian_grouped_prices_read_back_exactly(kopecks, space, sign):
    roubles, cents = divmod(kopecks, 100)
    grouped = f"{roubles:,}".replace(",", space)
    text = f"{grouped},{cents:02d}{sign}"
    assert parse_price(text)[0] == float(f"{roubles}.{cents:02d}")


# ------------------------------------------------------------------ titles keep their text


# Text where every "<" is followed by something that cannot open a tag (a digit, a space, "<", ">", ...).
PLAIN = st.text(
    alphabet=st.sampled_from(list("абвгдёЖЗxyzXYZ0123456789 <>/=%+-.,:;!?()\"'")), max_size=30
).filter(
    lambda s: all(
        not (s[i + 1 : i + 2].isalpha() or s[i + 1 : i + 2] in "/!?") for i, ch in enumerate(s) if ch == "<"
    )
)
# elements whose content is raw text to the parser are left out: their content is not markup-free text
RAW_TEXT = {
    "script",
    "style",
    "title",
    "textarea",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
}
TAGS = st.sampled_from(sorted(HTML_ELEMENTS - RAW_TEXT)).flatmap(
    lambda tag: st.sampled_from([f"<{tag}>", f"</{tag}>", f"<{tag}/>", f'<{tag} class="x">'])
)
PIECES = st.one_of(PLAIN.map(lambda text: (text, False)), TAGS.map(lambda tag: (tag, True)))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(PIECES, min_size=1, max_size=6), min_size=1, max_size=4))
def test_validated_titles_keep_every_character_that_is_not_markup(titles):
    """Whatever text sits between real tags, every character of an accepted title reaches the model's text."""
    with tempfile.TemporaryDirectory() as folder:
        images = write_jpeg(Path(folder) / "images" / "x.jpg").parent
        raw = ["".join(piece for piece, _ in parts) for parts in titles]
        good_rows(len(titles)).assign(title=raw, image_path="x.jpg").to_parquet(Path(folder) / "b.parquet")
        result = validate_batch(Path(folder) / "b.parquet", images)
    cleaned = clean_products(result.accepted)
    for row in cleaned.itertuples():
        plain = "".join(piece for piece, tag in titles[row.source_row] if not tag)
        assert "".join(row.title_clean.split()) == "".join(plain.split())
        assert row.text.startswith(row.title_clean.rstrip(". "))  # its end merges into the ". " separator
    for reason in result.rejected["reject_reason"]:
        assert reason == "empty title"  # only titles with no text at all are refused


def test_validate_out_writes_what_the_ingest_assets_keep(catalogue, tmp_path, capsys):
    rows = good_rows(3).assign(
        brend=pd.array([361, None, 7], dtype="Int64"),
        isadult=["да", None, "нет"],
        description=["Летнее платье", "None", ""],
        title=["Платье женское 0", "Платье женское 1", "nan"],
    )
    path, images = catalogue(rows)
    assert cli_main(["validate", str(path), "--images", str(images), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "2 accepted, 1 rejected of 3" in printed and str(tmp_path / "out" / "accepted.parquet") in printed
    accepted = pd.read_parquet(tmp_path / "out" / "accepted.parquet")
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    pd.testing.assert_frame_equal(accepted, clean_products(validate_batch(path, images).accepted))
    assert accepted["text"].tolist() == ["Платье женское 0. 361. Летнее платье", "Платье женское 1"]
    assert accepted["data_issues"].tolist() == [
        "brend: number 361 read as text; isadult: 'да' read as True",
        "description: 'None' read as missing; isadult: missing, left unknown",
    ]
    assert rejected["reject_reason"].tolist() == ["empty title: 'nan' read as missing"]


def test_validate_refuses_a_batch_name_that_cannot_be_a_partition(catalogue, capsys):
    path, images = catalogue(good_rows(1), name="wb_export...v2")
    assert cli_main(["validate", str(path), "--images", str(images)]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: batch name 'wb_export...v2' contains '...', the partition-range separator: "
        "it cannot be a partition key; rename the file\n"
    )
