"""Input contract: every bad input becomes a clear error or a rejected row with a reason; nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mm_pipeline.catalog import contract
from mm_pipeline.catalog.contract import (
    RESERVED_COLUMNS,
    BatchFileError,
    earlier_nm_owners,
    validate_batch,
)
from mm_pipeline.cli import main as cli_main
from mm_pipeline_tests.conftest import good_rows, write_jpeg
from mm_pipeline_tests.prep.test_images import write_forged_png


def reasons(result) -> dict[int | str, str]:
    """Rejected rows keep their original values as text; numeric nm come back as int for readability."""
    keys = [int(nm) if str(nm).isdigit() else nm for nm in result.rejected["nm"]]
    return dict(zip(keys, result.rejected["reject_reason"], strict=True))


def assert_nothing_lost(result, n_input: int) -> None:
    assert len(result.accepted) + len(result.rejected) == n_input
    rows = sorted([*result.accepted["source_row"], *result.rejected["source_row"].astype(int)])
    assert rows == list(range(n_input))


def test_clean_batch_is_fully_accepted_with_types(catalogue):
    path, images = catalogue(good_rows(5))
    result = validate_batch(path, images)
    assert len(result.accepted) == 5 and result.rejected.empty
    assert result.accepted["nm"].dtype == np.int64
    assert result.accepted["isadult"].dtype == "boolean"  # nullable: an empty cell is unknown
    assert all(p.endswith(".jpg") for p in result.accepted["image_file"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a parquet file at all", "not a readable parquet"),
        (b"PAR1\x00\x00garbage", "not a readable parquet"),
    ],
)
def test_unusable_files_name_the_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.parquet"
    path.write_bytes(content)
    with pytest.raises(BatchFileError) as info:
        validate_batch(path, tmp_path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_truncated_parquet_is_refused(tmp_path, catalogue):
    path, images = catalogue(good_rows(50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BatchFileError, match="not a readable parquet"):
        validate_batch(path, images)


@pytest.mark.parametrize("column", ["nm", "title"])
def test_missing_required_column(catalogue, column):
    path, images = catalogue(good_rows(3).drop(columns=[column]), images_for=[1000, 1001, 1002])
    with pytest.raises(BatchFileError, match=f"missing required column.*{column}"):
        validate_batch(path, images)


def test_nm_as_strings_and_floats(catalogue):
    rows = good_rows(4)
    rows["nm"] = ["1000", "abc", " 1002 ", "1003"]
    path, images = catalogue(rows, images_for=[1000, 1002, 1003])
    result = validate_batch(path, images)
    assert sorted(result.accepted["nm"]) == [1000, 1002, 1003]
    assert "bad type in column nm" in reasons(result)["abc"]

    floats = good_rows(3).astype({"nm": float})
    floats.loc[1, "nm"] = np.nan
    floats.loc[2, "nm"] = 1002.5
    path, images = catalogue(floats, name="floats", images_for=[1000])
    result = validate_batch(path, images)
    assert list(result.accepted["nm"]) == [1000]
    assert sorted(result.rejected["reject_reason"]) == [
        "bad type in column nm: 1002.5 is not an integer",
        "missing nm",
    ]
    assert_nothing_lost(result, 3)


def test_duplicate_nm_inside_and_across_batches(catalogue):
    rows = good_rows(3)
    rows.loc[2, "nm"] = 1000
    first, images = catalogue(rows, name="batch_a")
    result = validate_batch(first, images)
    assert reasons(result) == {1000: "duplicate nm: 1000 already in row 0 of this batch"}

    second, _ = catalogue(good_rows(2, start=1001), name="batch_b")
    owners = earlier_nm_owners([second, first], second, images)
    assert owners == {1001: "batch_a"}
    result_b = validate_batch(second, images, nm_owners=owners)
    assert reasons(result_b) == {1001: "duplicate nm: 1001 already accepted in batch batch_a"}
    assert list(result_b.accepted["nm"]) == [1002]
    assert earlier_nm_owners([first, second], first, images) == {}


def test_cross_batch_owner_is_the_earliest_file_that_accepts_the_nm(catalogue, monkeypatch):
    earlier = good_rows(6, start=2000).assign(image_path=None)
    earlier.loc[0, "title"] = ""  # 2000: rejected in batch_a, so batch_b keeps it
    earlier.loc[1, "image_path"] = "absent.jpg"  # 2001: its image is missing in batch_a
    earlier.loc[2, "title"] = "🔥"  # 2002: first row rejected, the second 2002 row is accepted
    earlier.loc[4, "nm"] = 2002
    earlier.loc[5, ["nm", "title"]] = [2004, ""]  # not in batch_b: never re-validated
    first, images = catalogue(earlier, name="batch_a")
    second, _ = catalogue(good_rows(6, start=2000).drop(index=4), name="batch_b")
    assert reasons(validate_batch(first, images)) == {
        2000: "empty title",
        2001: "missing image: absent.jpg not found",
        2002: "empty title",
        2004: "empty title",
    }

    validated = []
    validate_row = contract._validate_row
    with monkeypatch.context() as patch:
        patch.setattr(
            contract, "_validate_row", lambda row, *a: validated.append(row["nm"]) or validate_row(row, *a)
        )
        owners = earlier_nm_owners([second, first], second, images)
    assert owners == {2002: "batch_a", 2003: "batch_a"}
    assert validated == [2000, 2001, 2002, 2003, 2002]  # only rows whose nm batch_b also lists

    result_b = validate_batch(second, images, nm_owners=owners)
    assert sorted(result_b.accepted["nm"]) == [2000, 2001, 2005]
    assert reasons(result_b) == {
        2002: "duplicate nm: 2002 already accepted in batch batch_a",
        2003: "duplicate nm: 2003 already accepted in batch batch_a",
    }


def test_empty_titles_control_characters_and_huge_description(catalogue):
    rows = good_rows(4)
    rows.loc[0, "title"] = "   \t "
    rows.loc[1, "title"] = None
    rows.loc[2, "title"] = "Платье\x00\x07 женское"
    rows.loc[3, "description"] = "а" * 1_000_000
    path, images = catalogue(rows)
    result = validate_batch(path, images)
    assert reasons(result) == {1000: "empty title", 1001: "empty title"}
    huge = result.accepted.set_index("nm").loc[1003]
    assert len(huge["description"]) == 20_000 and "truncated" in huge["data_issues"]


def test_titles_empty_after_cleaning_are_rejected(catalogue):
    blank = ["\x00\x07", "\u200b\u200b", "🔥🔥", "<br>", "&nbsp;&amp;lt;p&amp;gt;"]
    rows = good_rows(len(blank) + 1)
    rows.loc[: len(blank) - 1, "title"] = blank
    result = validate_batch(*catalogue(rows))
    assert reasons(result) == {1000 + i: "empty title" for i in range(len(blank))}
    assert list(result.accepted["nm"]) == [1000 + len(blank)]


def test_non_utf8_bytes_are_replaced_and_noted(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"nm": pa.array([1], pa.int64()), "title": pa.array([b"\xff\xfe title"], pa.binary())})
    path = tmp_path / "bytes.parquet"
    pq.write_table(table, path)
    write_jpeg(tmp_path / "images" / "1.jpg")
    result = validate_batch(path, tmp_path / "images")
    assert result.accepted.loc[0, "title"].endswith("title")
    assert "not valid UTF-8" in result.accepted.loc[0, "data_issues"]
    assert set(result.missing_columns) >= {"description", "category", "isadult"}


def test_rejected_rows_keep_undecodable_bytes_as_text(tmp_path):
    table = pa.table({"nm": pa.array([2], pa.int64()), "title": pa.array([b"\xff\xfe title"], pa.binary())})
    pq.write_table(table, tmp_path / "bytes.parquet")
    result = validate_batch(tmp_path / "bytes.parquet", tmp_path / "images")  # no image: rejected
    assert result.rejected.loc[0, "title"] == "\ufffd\ufffd title"
    assert result.rejected.loc[0, "reject_reason"] == "missing image: 2.jpg not found"


def test_bad_prices_keep_the_product_with_a_note(catalogue):
    rows = good_rows(4).astype({"price": object})
    rows["price"] = [-5.0, 0.0, np.nan, "дорого"]
    path, images = catalogue(rows.astype({"price": str}))
    result = validate_batch(path, images)
    assert len(result.accepted) == 4 and result.accepted["price"].isna().all()
    assert result.accepted["data_issues"].str.startswith("price:").sum() == 3  # NaN is simply unknown


def test_image_problems(catalogue, tmp_path):
    rows = good_rows(9)
    path, images = catalogue(rows, images_for=[1000])
    (images / "1001.jpg").write_bytes(b"")
    (images / "1002.jpg").write_bytes(b"this is text, not a jpeg")
    write_jpeg(images / "1003.jpg", size=(200, 200))
    data = (images / "1003.jpg").read_bytes()
    (images / "1003.jpg").write_bytes(data[: len(data) // 2])
    write_jpeg(images / "1004.jpg", size=(1, 1))
    Image.new("RGBA", (40, 30), (10, 200, 10, 0)).save(
        images / "1005.jpg", "PNG"
    )  # PNG with alpha named .jpg
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(images / "1006.jpg", "JPEG")
    Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)).save(images / "1007.jpg", "PNG")
    Image.new("L", (5000, 5000)).save(images / "1008.jpg", "PNG")  # 25 Mpx bomb under a 1 Mpx limit
    result = validate_batch(path, images, max_image_pixels=1_000_000)
    why = reasons(result)
    assert why[1001].startswith("missing image") is False and "empty file" in why[1001]
    assert why[1002].startswith("unreadable image")
    assert why[1003].startswith("unreadable image")
    assert why[1004].startswith("image too small")
    assert why[1008].startswith("image too large")
    assert sorted(result.accepted["nm"]) == [1000, 1005, 1006, 1007]
    assert_nothing_lost(result, 9)


def test_missing_image_file(catalogue):
    path, images = catalogue(good_rows(2), images_for=[1000])
    result = validate_batch(path, images)
    assert reasons(result) == {1001: "missing image: 1001.jpg not found"}
    assert result.rejected[["source_file", "source_row"]].values.tolist() == [["batch_a.parquet", 1]]


def test_forged_bomb_headers_are_too_large_not_unreadable(catalogue):
    path, images = catalogue(good_rows(2), images_for=[])
    write_forged_png(images / "1000.jpg", 10_000, 10_000)
    write_forged_png(images / "1001.jpg", 50_000, 50_000)
    assert reasons(validate_batch(path, images)) == {
        1000: "image too large: 1000.jpg is 10000x10000, over the 40000000 pixel limit",
        1001: "image too large: 1001.jpg is 50000x50000, over the 40000000 pixel limit",
    }


def test_image_path_cannot_escape_the_images_folder(catalogue, tmp_path):
    rows = good_rows(4)
    secret = write_jpeg(tmp_path / "outside" / "secret.jpg")
    rows["image_path"] = ["../../etc/passwd", str(secret), "link.jpg", "sub/ok.jpg"]
    path, images = catalogue(rows, images_for=[])
    os.symlink(secret, images / "link.jpg")
    write_jpeg(images / "sub" / "ok.jpg")
    why = reasons(validate_batch(path, images))
    assert "outside the images folder" in why[1000]
    assert "is absolute" in why[1001]
    assert "outside the images folder" in why[1002]
    assert 1003 not in why


def test_image_reasons_name_the_file_as_the_row_gives_it(catalogue, tmp_path):
    """Two missing files of one name in two folders read apart; a row without image_path names <nm>.jpg."""
    rows = good_rows(3)
    rows["image_path"] = ["sub/missing.jpg", "other/missing.jpg", None]
    path, images = catalogue(rows, images_for=[])
    os.symlink(write_jpeg(tmp_path / "outside" / "secret.jpg"), images / "1002.jpg")
    why = reasons(validate_batch(path, images))
    assert why[1000] == "missing image: sub/missing.jpg not found"
    assert why[1001] == "missing image: other/missing.jpg not found"
    assert why[1002] == "image 1002.jpg (no image_path) points outside the images folder"


def test_odd_nm_and_image_path_values_become_rejected_rows(tmp_path, catalogue):
    rows = good_rows(4).assign(image_path=["a" * 5000, "x\x00.jpg", "/" + "b" * 5000, None])
    why = reasons(validate_batch(*catalogue(rows)))
    assert why[1000].startswith("unreadable image: " + "a" * 80 + "… (5000 characters)")
    assert why[1000].endswith("(File name too long)")
    assert why[1001] == "bad image_path 'x\\x00.jpg': embedded null byte"
    assert (
        why[1002]
        == f"image_path '/{'b' * 78}… (5003 characters) is absolute; it must be relative to the images folder"
    )
    assert 1003 not in why

    images = tmp_path / "images"
    reasons_by_nm = {  # the valid 1000 rows have an image
        (1e30, 1000.0): ["bad type in column nm: 1e+30 is out of int64 range"],
        ("9" * 20, "1000"): [f"bad type in column nm: '{'9' * 20}' is out of int64 range"],
        ((1, 2), (1000,)): [
            "bad type in column nm: ndarray array([1, 2])",
            "bad type in column nm: ndarray array([1000])",
        ],
    }
    for nm, expected in reasons_by_nm.items():
        path = tmp_path / "odd_nm.parquet"
        pq.write_table(pa.table({"nm": pa.array(nm), "title": ["a", "b"]}), path)
        result = validate_batch(path, images)
        assert list(result.rejected["reject_reason"]) == expected
        assert_nothing_lost(result, 2)


def test_unexpected_row_errors_become_rejected_rows(catalogue, monkeypatch):
    path, images = catalogue(good_rows(3))
    check_image = contract.check_image

    def failing_for_1001(image, **kwargs):
        if image.name == "1001.jpg":
            raise RuntimeError("disk\nvanished")
        check_image(image, **kwargs)

    monkeypatch.setattr(contract, "check_image", failing_for_1001)
    result = validate_batch(path, images)
    assert reasons(result) == {1001: "unexpected RuntimeError: disk vanished"}
    assert sorted(result.accepted["nm"]) == [1000, 1002]


@pytest.mark.parametrize("column", RESERVED_COLUMNS)
def test_reserved_column_names_are_refused(catalogue, column):
    path, images = catalogue(good_rows(2).assign(**{column: ["x", "y"]}))
    with pytest.raises(BatchFileError, match=f"reserved column name\\(s\\) {column}"):
        validate_batch(path, images)


def test_batch_file_errors_are_one_line(tmp_path):
    table = pa.Table.from_arrays([pa.array([1]), pa.array(["a"]), pa.array(["b"])], ["nm", "title", "title"])
    pq.write_table(table, tmp_path / "twice.parquet")
    with pytest.raises(BatchFileError) as info:
        validate_batch(tmp_path / "twice.parquet", tmp_path)
    assert str(info.value) == f"{tmp_path / 'twice.parquet'}: duplicate column name(s) title"
    assert (
        str(BatchFileError("f.parquet", "ArrowInvalid: one\n  two\tthree"))
        == "f.parquet: ArrowInvalid: one two three"
    )


def test_validate_cli_prints_rejects_and_exits_cleanly(catalogue, tmp_path, capsys):
    rows = good_rows(3)
    rows.loc[1, "title"] = ""
    path, images = catalogue(rows)
    assert cli_main(["validate", str(path), "--images", str(images)]) == 0
    out = capsys.readouterr().out
    assert (
        "2 accepted, 1 rejected of 3" in out
        and "batch_a.parquet: rejected nm=1001 (row 1): empty title\n" in out
    )

    bad = tmp_path / "broken.parquet"
    bad.write_text("nope")
    assert cli_main(["validate", str(bad), "--images", str(images)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "Traceback" not in err


def test_validate_cli_exit_status_says_whether_the_file_is_usable(catalogue, tmp_path, capsys):
    """Every row rejected: the lines, then exit 1. A missing images folder or an --out that is a file: one
    line, exit 2. Row lines name the file as given."""
    rows = good_rows(2)
    rows["title"] = ""
    path, images = catalogue(rows)
    assert cli_main(["validate", str(path), "--images", str(images)]) == 1
    captured = capsys.readouterr()
    assert f"{path}: rejected nm=1000 (row 0): empty title\n" in captured.out
    assert captured.err == f"error: {path}: every row was rejected\n"
    assert cli_main(["validate", str(path), "--images", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err == f"error: --images {tmp_path / 'absent'} is not a directory\n"
    taken = tmp_path / "taken.csv"
    taken.write_text("x")
    for out in (taken, taken / "sub"):  # a file, or a folder under one
        assert cli_main(["validate", str(path), "--images", str(images), "--out", str(out)]) == 2
        assert "is a file" in capsys.readouterr().err and taken.read_text() == "x"


@pytest.mark.parametrize(("rows", "reader"), [(3, "true"), (3000, "head -1")])
def test_validate_cli_piped_into_a_reader_that_stops_early_prints_no_traceback(catalogue, rows, reader):
    """Output still in the buffer (a few lines, a reader that reads nothing) or written mid-run (thousands
    of lines into `head -1`): no traceback and no "Exception ignored" from the interpreter's exit, in a
    shell where Python's output is buffered as usual."""
    frame = pd.concat([good_rows(1)] * rows, ignore_index=True).assign(nm=lambda f: 1000 + f.index)
    path, images = catalogue(frame, images_for=[])  # every row: missing image
    command = f"{sys.executable} -m mm_pipeline.cli validate {path} --images {images} | {reader}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300, env=env)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr


def test_validate_cli_reports_an_unexpected_failure_in_one_line(catalogue, monkeypatch, capsys):
    path, images = catalogue(good_rows(1))

    def broken(*args, **kwargs):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(contract, "validate_batch", broken)
    assert cli_main(["validate", str(path), "--images", str(images)]) == 1
    assert capsys.readouterr().err == f"error: {path}: unexpected RuntimeError: first line second line\n"


BAD_BATCHES = {
    "nm_list": (
        pa.table({"nm": [[1, 2]], "title": ["x"]}),
        1,
        "rejected nm=[1 2] (row 0): bad type in column nm",
    ),
    "nm_1e30": (
        pa.table({"nm": [1e30, 1.0], "title": ["x", "y"], "image_path": ["1.jpg", None]}),
        0,
        "rejected nm=1e+30 (row 0): bad type in column nm: 1e+30 is out of int64 range",
    ),
    "long_image_path": (
        pa.table({"nm": [1], "title": ["x"], "image_path": ["a" * 5000]}),
        1,
        "rejected nm=1 (row 0): unreadable image: aaa",
    ),
    "source_row_column": (
        pa.table({"nm": [1], "title": ["x"], "source_row": [5]}),
        2,
        "reserved column name(s) source_row",
    ),
    "two_title_columns": (
        pa.Table.from_arrays([pa.array([1]), pa.array(["a"]), pa.array(["b"])], ["nm", "title", "title"]),
        2,
        "duplicate column name(s) title",
    ),
}


@pytest.mark.parametrize("case", BAD_BATCHES)
def test_validate_cli_never_prints_a_traceback(tmp_path, case):
    table, exit_code, expected = BAD_BATCHES[case]
    path = tmp_path / f"{case}.parquet"
    pq.write_table(table, path)
    images = write_jpeg(tmp_path / "images" / "1.jpg").parent
    done = subprocess.run(
        [sys.executable, "-m", "mm_pipeline.cli", "validate", str(path), "--images", str(images)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == exit_code and "Traceback" not in done.stderr, done.stderr
    if exit_code == 2:  # the file cannot be read as a batch
        assert done.stderr.startswith(f"error: {path}: {expected}") and done.stderr.count("\n") == 1
    else:  # rejected rows, each with its reason; exit 1 when none was accepted
        assert f"{path}: {expected}" in done.stdout
        assert done.stderr == (f"error: {path}: every row was rejected\n" if exit_code else "")


def test_extra_columns_are_kept(catalogue):
    rows = good_rows(2).assign(dup_group=[7, 7], gender=["women", "women"])
    path, images = catalogue(rows)
    accepted = validate_batch(path, images).accepted
    assert list(accepted["dup_group"]) == ["7", "7"] and list(accepted["gender"]) == ["women", "women"]
    assert accepted["dup_group"].dtype == "string"  # the contract's type for group ids


def test_counts_add_up_on_a_mixed_frame(catalogue):
    rows = pd.concat([good_rows(20), good_rows(5, start=1000)], ignore_index=True)
    rows.loc[3, "title"] = ""
    path, images = catalogue(rows, images_for=range(1000, 1015))
    result = validate_batch(path, images)
    assert_nothing_lost(result, 25)
    # the first 1003 is rejected for its title, so the later, valid 1003 is the one accepted
    assert result.reject_counts() == {"duplicate nm": 4, "missing image": 5, "empty title": 1}
    assert (result.accepted["nm"] == 1003).sum() == 1
