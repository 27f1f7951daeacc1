"""Field cases (../shared/cases/field_cases.py): batches modelled on real export problems, each with its
expectation in ``cases.tsv``. Every case goes through ``mm-pipeline validate --out`` and through the ingest
assets; the expectation of each case is the assertion, checked on both paths. Skipped when ../shared is
absent. Beyond the case's own expectation, every accepted row is compared with the file: a contract value
that differs from the file's has a ``data_issues`` note, and extra columns are unchanged."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mm_pipeline.cli import main as cli_main
from mm_pipeline_tests.conftest import REPO

FIELD_CASES = REPO.parent / "shared" / "cases" / "field_cases.py"
NOTED_COLUMNS = ("title", "description", "category", "sub_category", "brend", "isadult", "price")


@dataclass
class BatchOutcome:
    """One batch file through one path: refused as a whole (``refusal``) or split into rows."""

    refusal: str | None = None
    accepted: pd.DataFrame | None = None  # with the model's `text`
    rejected: pd.DataFrame | None = None

    def accepted_by_nm(self) -> pd.DataFrame:
        return self.accepted.set_index("nm")

    def reasons(self) -> dict[int, str]:
        return dict(zip(self.rejected["nm"].astype(int), self.rejected["reject_reason"], strict=True))


@pytest.fixture(scope="module")
def field_cases(tmp_path_factory) -> tuple[Path, list[tuple[str, str]]]:
    if not FIELD_CASES.exists():
        pytest.skip(f"field cases generator {FIELD_CASES} is not available")
    out = tmp_path_factory.mktemp("field_cases")
    subprocess.run([sys.executable, str(FIELD_CASES), str(out)], check=True, capture_output=True, timeout=300)
    with open(out / "cases.tsv", encoding="utf-8") as table:
        cases = [(row["case"], row["expectation"]) for row in csv.DictReader(table, delimiter="\t")]
    assert cases
    return out, cases


def batch_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


def through_validate(case_dir: Path, out: Path) -> dict[str, BatchOutcome]:
    """``mm-pipeline validate FILE --images IMAGES --out DIR`` on every batch file of the case."""
    outcomes = {}
    for batch in [*batch_files(case_dir), *batch_files(case_dir / "incoming")]:
        target = out / batch.parent.name / batch.name
        stderr = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(stderr):
            code = cli_main(
                ["validate", str(batch), "--images", str(case_dir / "images"), "--out", str(target)]
            )
        if code == 2:
            outcomes[batch.name] = BatchOutcome(refusal=stderr.getvalue())
            continue
        assert code == 0, stderr.getvalue()
        outcomes[batch.name] = BatchOutcome(
            accepted=pd.read_parquet(target / "accepted.parquet"),
            rejected=pd.read_parquet(target / "rejected.parquet"),
        )
    return outcomes


def through_assets(case_dir: Path, tmp_path: Path) -> dict[str, BatchOutcome]:
    """The incoming folder (``incoming/`` when the case has one) registered and ingested partition by
    partition, as ``mm-pipeline run`` and the sensor do."""
    from mm_pipeline_tests.defs.conftest import make_pipeline

    incoming = case_dir / "incoming" if (case_dir / "incoming").is_dir() else case_dir
    pipeline = make_pipeline(tmp_path, incoming, case_dir / "images")
    names, refused = pipeline.settings.incoming_batches()
    outcomes = {problem.path.name: BatchOutcome(refusal=str(problem)) for problem in refused}
    assert pipeline.register() == names
    layout = pipeline.settings.layout
    for name in names:
        result = pipeline.run("ingest_job", name)
        if not result.success:
            failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
            outcomes[f"{name}.parquet"] = BatchOutcome(refusal=failure.event_specific_data.error.message)
            continue
        outcomes[f"{name}.parquet"] = BatchOutcome(
            accepted=pd.read_parquet(layout.cleaned_text(name)),
            rejected=pd.read_parquet(layout.raw_rejected(name)),
        )
    return outcomes


# ------------------------------------------------------------------ one check per case: its expectation


def all_accepted(outcome: BatchOutcome, n: int) -> None:
    assert outcome.refusal is None, outcome.refusal
    assert len(outcome.accepted) == n and outcome.rejected.empty, outcome.rejected.to_dict("records")


def isadult_float_nan(outcomes: dict[str, BatchOutcome]) -> None:
    batch = outcomes["batch.parquet"]
    all_accepted(batch, 5)
    rows = batch.accepted_by_nm()
    assert rows["isadult"].astype("string").fillna("unknown").tolist() == [
        "False",
        "True",
        "False",
        "unknown",
        "False",
    ]
    assert pd.isna(rows.loc[5003, "isadult"]) and "isadult" in rows.loc[5003, "data_issues"]


def numeric_brand_column(outcomes: dict[str, BatchOutcome]) -> None:
    batch = outcomes["batch.parquet"]
    all_accepted(batch, 4)
    assert batch.accepted["brend"].tolist() == ["361", "555", "361", "1001"]


def literal_nan_strings(outcomes: dict[str, BatchOutcome]) -> None:
    batch = outcomes["batch.parquet"]
    assert batch.reasons()[5001].startswith("empty title")
    rows = batch.accepted_by_nm()
    assert sorted(rows.index) == [5000, 5002, 5003]
    assert rows.loc[5002, "brend"] == rows.loc[5002, "description"] == ""
    assert "brend" in rows.loc[5002, "data_issues"] and "description" in rows.loc[5002, "data_issues"]
    assert not batch.accepted["text"].str.contains(r"\b(?:nan|None)\b", regex=True).any()


def nm_as_index(outcomes: dict[str, BatchOutcome]) -> None:
    all_accepted(outcomes["batch.parquet"], 4)
    assert sorted(outcomes["batch.parquet"].accepted["nm"]) == [5000, 5001, 5002, 5003]


def spark_dataset_dir(outcomes: dict[str, BatchOutcome]) -> None:
    all_accepted(outcomes["batch.parquet"], 6)
    assert sorted(outcomes["batch.parquet"].accepted["nm"]) == list(range(5000, 5006))


def partition_key_ellipsis(outcomes: dict[str, BatchOutcome]) -> None:
    refusal = outcomes["wb_export...v2.parquet"].refusal
    assert refusal and "wb_export...v2.parquet" in refusal and "'...'" in refusal and "rename" in refusal
    all_accepted(outcomes["batch_000.parquet"], 3)
    if "batch.parquet" in outcomes:  # validate only: the same rows under a usable name
        all_accepted(outcomes["batch.parquet"], 3)


def wrong_extension_images(outcomes: dict[str, BatchOutcome]) -> None:
    batch = outcomes["batch.parquet"]
    assert sorted(batch.accepted["nm"]) == [5000, 5001, 5002, 5003]
    assert batch.reasons()[5004].startswith("unreadable image") and "5004.jpg" in batch.reasons()[5004]


def malformed_exif_header(outcomes: dict[str, BatchOutcome]) -> None:
    all_accepted(outcomes["batch.parquet"], 4)


def html_comparison_signs(outcomes: dict[str, BatchOutcome]) -> None:
    batch = outcomes["batch.parquet"]
    all_accepted(batch, 4)
    text = batch.accepted_by_nm()["text"]
    assert "<120 см" in text[5001] and ">15 кг" in text[5001] and "Состав: хлопок 100%" in text[5001]
    assert "<1/2 дюйма>" in text[5002] and "<b>" not in text[5001]


def price_formats_ru(outcomes: dict[str, BatchOutcome]) -> None:
    batch = outcomes["batch.parquet"]
    all_accepted(batch, 6)
    rows = batch.accepted_by_nm()
    assert rows.loc[[5000, 5001, 5002], "price"].tolist() == [1999.0, 1999.0, 2499.5]
    for nm, right in ((5003, 1299.0), (5004, 1000.0), (5005, 123.0)):  # ambiguous: unknown or right, noted
        assert pd.isna(rows.loc[nm, "price"]) or rows.loc[nm, "price"] == right
        assert "price:" in rows.loc[nm, "data_issues"]


def far_future_timestamp_column(outcomes: dict[str, BatchOutcome]) -> None:
    all_accepted(outcomes["batch.parquet"], 4)
    accepted = outcomes["batch.parquet"].accepted
    assert str(accepted["valid_to"].max().date()) == "9999-12-31" and accepted["listed_on"].notna().all()


CHECKS: dict[str, Callable[[dict[str, BatchOutcome]], None]] = {
    check.__name__: check
    for check in (
        isadult_float_nan,
        numeric_brand_column,
        literal_nan_strings,
        nm_as_index,
        spark_dataset_dir,
        partition_key_ellipsis,
        wrong_extension_images,
        malformed_exif_header,
        html_comparison_signs,
        price_formats_ru,
        far_future_timestamp_column,
    )
}


# ------------------------------------------------------------------ every case: no value changed silently


def _same(original, accepted) -> bool:
    """Equal values, or both missing (an empty text is a missing one)."""
    missing = [
        v is None or v == "" or (pd.api.types.is_scalar(v) and pd.isna(v)) for v in (original, accepted)
    ]
    return all(missing) or (not any(missing) and original == accepted)


def assert_changes_are_noted(batch_file: Path, outcome: BatchOutcome) -> None:
    """Each accepted row against its source row: changed contract values are noted, extras unchanged."""
    source = pd.read_parquet(batch_file)
    source = source.reset_index(drop=source.index.name is None)
    for row in outcome.accepted.to_dict("records"):
        original = source.iloc[row["source_row"]]
        for column in NOTED_COLUMNS:
            if column in source.columns and not _same(original[column], row[column]):
                assert re.search(rf"\b{column}:", row["data_issues"]), (column, original[column], row)
        for column in source.columns:
            if column not in (*NOTED_COLUMNS, "nm", "image_path"):
                assert _same(original[column], row[column]), (column, original[column], row[column])


def run_cases(field_cases, tmp_path: Path, path: Callable[[Path, Path], dict[str, BatchOutcome]]) -> None:
    out, cases = field_cases
    failures = []
    for case, expectation in cases:
        case_dir = out / case
        try:
            outcomes = path(case_dir, tmp_path / case)
            CHECKS[case](outcomes)
            for name, outcome in outcomes.items():
                if outcome.refusal is None:
                    folder = case_dir / "incoming" if (case_dir / "incoming" / name).exists() else case_dir
                    assert_changes_are_noted(folder / name, outcome)
        except KeyError as missing:
            failures.append(
                f"{case}: no check written for this case yet ({missing}); expected: {expectation}"
            )
        except AssertionError as problem:
            failures.append(f"{case}: expected: {expectation}\n  failed: {problem!r}")
    assert not failures, "\n".join(failures)


def test_field_cases_through_validate_out(field_cases, tmp_path):
    run_cases(field_cases, tmp_path, through_validate)


def test_field_cases_through_the_ingest_assets(field_cases, tmp_path):
    run_cases(field_cases, tmp_path, through_assets)


def test_validate_out_matches_the_ingest_assets(field_cases, tmp_path):
    """What ``validate --out`` writes is what raw_products and cleaned_text keep, row for row."""
    out, _ = field_cases
    case_dir = out / "price_formats_ru"
    by_cli = through_validate(case_dir, tmp_path / "cli")["batch.parquet"]
    by_assets = through_assets(case_dir, tmp_path / "assets")["batch.parquet"]
    columns = ["nm", "title", "brend", "isadult", "price", "data_issues", "text", "source_row"]
    pd.testing.assert_frame_equal(by_cli.accepted[columns], by_assets.accepted[columns])
