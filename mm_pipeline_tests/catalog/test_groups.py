"""``dup_group`` has one contract type (string ids, <NA> for no group) whatever a batch file holds."""

from __future__ import annotations

import pandas as pd

from mm_pipeline.catalog.contract import validate_batch
from mm_pipeline.catalog.groups import dup_group_ids
from mm_pipeline_tests.conftest import good_rows


def test_dup_group_ids_are_one_type_whatever_the_file_holds(catalogue):
    rows = good_rows(6).assign(dup_group=[3.0, None, -1.0, float("nan"), 12.0, 3.0])
    path, images = catalogue(rows)
    accepted = validate_batch(path, images).accepted
    assert accepted["dup_group"].dtype == "string"
    assert accepted["dup_group"].tolist() == ["3", pd.NA, pd.NA, pd.NA, "12", "3"]
    mixed = pd.Series([3, "3", " 3.0 ", "-1", "", None, "SKU-7", 7.5, "-1.0", b"9"], dtype=object)
    expected = ["3", "3", "3", pd.NA, pd.NA, pd.NA, "SKU-7", "7.5", pd.NA, "9"]
    assert dup_group_ids(mixed).tolist() == expected
