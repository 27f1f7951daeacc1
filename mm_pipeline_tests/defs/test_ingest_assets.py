"""Ingest assets on two partitions: outputs, metadata, and partition-scoped reruns."""

from __future__ import annotations

import pandas as pd
import pytest

from mm_pipeline.prep.images import open_tensor_store
from mm_pipeline_tests.conftest import shared_set
from mm_pipeline_tests.defs.conftest import make_pipeline


def materialization(result, asset: str):
    events = result.asset_materializations_for_node(asset)
    assert len(events) == 1
    return events[0].metadata


def test_two_partitions_and_a_rerun_touch_only_their_files(tmp_path, small_sample):
    pipeline = make_pipeline(tmp_path, small_sample / "batches", small_sample / "images")
    batches = pipeline.register()
    assert batches == ["batch_000", "batch_001"]
    for batch in batches:
        result = pipeline.run("ingest_job", batch)
        assert result.success
        meta = materialization(result, "raw_products")
        source = pd.read_parquet(small_sample / "batches" / f"{batch}.parquet")
        assert meta["rows_accepted"].value + meta["rows_rejected"].value == len(source)
        assert meta["rows_rejected"].value > 0  # the sample plants bad rows in every batch

    layout = pipeline.settings.layout
    accepted = pd.read_parquet(layout.raw_accepted("batch_000"))
    rejected = pd.read_parquet(layout.raw_rejected("batch_000"))
    assert set(rejected["reject_reason"].str.split(":").str[0]) >= {
        "missing image",
        "empty title",
        "duplicate nm",
    }
    cleaned = pd.read_parquet(layout.cleaned_text("batch_000"))
    assert list(cleaned["nm"]) == list(accepted["nm"])
    assert not cleaned["text"].str.contains("<|&nbsp;|🔥", regex=True).any()
    store = open_tensor_store(layout.image_tensors("batch_000"))
    assert store.shape == (len(accepted), 96, 96, 3)

    other = [
        layout.raw_accepted("batch_001"),
        layout.cleaned_text("batch_001"),
        layout.image_tensors("batch_001"),
    ]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in other}
    mine = [
        layout.raw_accepted("batch_000"),
        layout.cleaned_text("batch_000"),
        layout.image_tensors("batch_000"),
    ]
    mine_before = {p: p.read_bytes() for p in mine}
    assert pipeline.run("ingest_job", "batch_000").success
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in other} == before
    assert {p: p.read_bytes() for p in mine} == mine_before  # deterministic: byte-identical rerun


def test_unusable_batch_file_fails_with_its_name(tmp_path, small_sample):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "broken.parquet").write_text("not parquet")
    pipeline = make_pipeline(tmp_path, incoming, small_sample / "images")
    pipeline.register()
    result = pipeline.run("ingest_job", "broken")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "broken.parquet" in failure.event_specific_data.error.message
    assert "not a readable parquet" in failure.event_specific_data.error.message


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["flipkart1050", "lamoda_hats"])
def test_real_product_sets(tmp_path, name):
    folder = shared_set(name)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / f"{name}.parquet").symlink_to(folder / "products.parquet")
    pipeline = make_pipeline(tmp_path, incoming, folder / "images")
    pipeline.register()
    result = pipeline.run("ingest_job", name)
    assert result.success
    meta = materialization(result, "raw_products")
    source = pd.read_parquet(folder / "products.parquet")
    assert meta["rows_accepted"].value + meta["rows_rejected"].value == len(source)
    cleaned = pd.read_parquet(pipeline.settings.layout.cleaned_text(name))
    assert cleaned["text"].str.len().min() > 0
    if name == "lamoda_hats":
        assert cleaned["dup_group"].nunique() == 59  # extra columns travel on
        assert cleaned["text"].str.contains("[а-яА-Я]", regex=True).mean() > 0.9
    assert open_tensor_store(pipeline.settings.layout.image_tensors(name)).shape[0] == len(cleaned)
