"""Ingest assets on two partitions: outputs, metadata, and partition-scoped reruns."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mm_pipeline.model.clip import COMPACT_CONFIG, CONTEXT_LENGTH, context_length
from mm_pipeline.model.files import CONFIG_FILE
from mm_pipeline.prep.images import open_tensor_store
from mm_pipeline_tests.conftest import shared_set
from mm_pipeline_tests.defs.conftest import Pipeline, make_pipeline


def materialization(result, asset: str):
    events = result.asset_materializations_for_node(asset)
    assert len(events) == 1
    return events[0].metadata


def ingest_two_then_rerun_the_first(pipeline: Pipeline, incoming: Path) -> list[str]:
    """Ingest every registered batch, check outputs and metadata, rerun the first: only its files change."""
    batches = pipeline.register()
    assert len(batches) == 2
    layout = pipeline.settings.layout
    for batch in batches:
        result = pipeline.run("ingest_job", batch)
        assert result.success
        raw = materialization(result, "raw_products")
        source = pd.read_parquet(incoming / f"{batch}.parquet")
        assert raw["rows_accepted"].value + raw["rows_rejected"].value == len(source)
        accepted = pd.read_parquet(layout.raw_accepted(batch))
        assert len(accepted) == raw["rows_accepted"].value
        text = materialization(result, "cleaned_text")
        assert text["rows"].value == text["text_count"].value == len(accepted)
        assert text["text_chars_max"].value >= text["text_chars_p95"].value > 0
        assert text["model_context_tokens"].value == COMPACT_CONFIG["context_length"]
        words = pd.read_parquet(layout.cleaned_text(batch))["text"].str.split().str.len()
        assert text["text_over_context"].value == (words > COMPACT_CONFIG["context_length"] - 2).sum()
        tensors = materialization(result, "image_tensors")
        assert tensors["count"].value == len(accepted)
        assert tensors["resolution"].value == pipeline.settings.image_size
        assert tensors["disk_bytes"].value == layout.image_tensors(batch).stat().st_size
        shape = (len(accepted), pipeline.settings.image_size, pipeline.settings.image_size, 3)
        assert open_tensor_store(layout.image_tensors(batch)).shape == shape

    first, other = batches
    files = {
        batch: [layout.raw_accepted(batch), layout.cleaned_text(batch), layout.image_tensors(batch)]
        for batch in batches
    }
    other_before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files[other]}
    first_before = {p: p.read_bytes() for p in files[first]}
    assert pipeline.run("ingest_job", first).success
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files[other]} == other_before
    assert {p: p.read_bytes() for p in files[first]} == first_before  # deterministic: byte-identical rerun
    return batches


def test_two_partitions_and_a_rerun_touch_only_their_files(tmp_path, small_sample):
    pipeline = make_pipeline(tmp_path, small_sample / "batches", small_sample / "images")
    assert ingest_two_then_rerun_the_first(pipeline, small_sample / "batches") == ["batch_000", "batch_001"]
    layout = pipeline.settings.layout
    accepted = pd.read_parquet(layout.raw_accepted("batch_000"))
    rejected = pd.read_parquet(layout.raw_rejected("batch_000"))
    assert set(rejected["reject_reason"].str.split(":").str[0]) >= {
        "missing image",
        "empty title",
        "duplicate nm",
    }  # the sample plants bad rows in every batch
    cleaned = pd.read_parquet(layout.cleaned_text("batch_000"))
    assert list(cleaned["nm"]) == list(accepted["nm"])
    assert not cleaned["text"].str.contains("<|&nbsp;|🔥", regex=True).any()


RUCLIP_NAME = "ruclip-vit-base-patch32-384"


def write_config(folder: Path, context: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps({"context_length": context}))
    return folder


def test_context_length_comes_from_the_base_models_source_in_its_order(tmp_path):
    downloads, ruclip_dir = tmp_path / "downloads", write_config(tmp_path / "ruclip", 50)
    # a named ruCLIP not downloaded yet: ruCLIP's standard context, no network
    assert context_length("", RUCLIP_NAME, downloads) == CONTEXT_LENGTH
    assert context_length(None, RUCLIP_NAME) == CONTEXT_LENGTH
    write_config(downloads / RUCLIP_NAME, 60)  # where download(name, layout.downloads_dir) keeps it
    assert context_length("", RUCLIP_NAME, downloads) == 60
    assert context_length(ruclip_dir, RUCLIP_NAME, downloads) == 50  # MM_RUCLIP_DIR comes first
    assert context_length("", "", downloads) == COMPACT_CONFIG["context_length"]
    assert len({50, 60, CONTEXT_LENGTH, COMPACT_CONFIG["context_length"]}) == 4


def test_cleaned_text_reads_the_context_of_a_downloaded_named_ruclip(tmp_path, small_sample):
    pipeline = make_pipeline(
        tmp_path, small_sample / "batches", small_sample / "images", ruclip_name=RUCLIP_NAME
    )
    write_config(pipeline.settings.layout.downloads_dir / RUCLIP_NAME, 60)
    batch = pipeline.register()[0]
    result = pipeline.run("ingest_job", batch)
    assert result.success
    text = materialization(result, "cleaned_text")
    assert text["model_context_tokens"].value == 60
    words = pd.read_parquet(pipeline.settings.layout.cleaned_text(batch))["text"].str.split().str.len()
    assert text["text_over_context"].value == (words > 60 - 2).sum()


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
def test_real_product_sets_in_two_partitions(tmp_path, name):
    folder = shared_set(name)
    products = pd.read_parquet(folder / "products.parquet")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    half = len(products) // 2
    products.iloc[:half].to_parquet(incoming / f"{name}_a.parquet")
    products.iloc[half:].to_parquet(incoming / f"{name}_b.parquet")
    pipeline = make_pipeline(tmp_path, incoming, folder / "images")
    batches = ingest_two_then_rerun_the_first(pipeline, incoming)
    cleaned = pd.concat([pd.read_parquet(pipeline.settings.layout.cleaned_text(b)) for b in batches])
    assert cleaned["text"].str.len().min() > 0
    if name == "lamoda_hats":
        assert cleaned["dup_group"].nunique() == 59  # extra columns travel on
        assert cleaned["text"].str.contains("[а-яА-Я]", regex=True).mean() > 0.9


def test_sensor_registers_only_batch_names_dagster_can_use(tmp_path, small_sample, capfd):
    """A file whose name cannot be a partition key is refused by name, before registration; the other
    batches are registered and ingested as usual."""
    import shutil

    import dagster as dg

    from mm_pipeline.catalog.contract import batch_name

    incoming = shutil.copytree(small_sample / "batches", tmp_path / "incoming")
    shutil.copy(incoming / "batch_001.parquet", incoming / "wb_export...v2.parquet")
    pipeline = make_pipeline(tmp_path, incoming, small_sample / "images")
    sensor = pipeline.defs.resolve_sensor_def("new_batch_files")
    (tmp_path / "home").mkdir()
    with (
        dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        dg.build_sensor_context(
            instance_ref=instance.get_ref(),
            resources={"settings": pipeline.settings},
            repository_def=pipeline.defs.get_repository_def(),
        ) as context,
    ):
        tick = sensor.evaluate_tick(context)
    assert [r.partition_key for r in tick.run_requests] == ["batch_000", "batch_001"]
    [add] = tick.dynamic_partitions_requests
    assert list(add.partition_keys) == ["batch_000", "batch_001"]
    [warning] = [line for line in capfd.readouterr().err.splitlines() if "not registered" in line]
    assert str(incoming / "wb_export...v2.parquet") in warning and "'...'" in warning
    # the rule the sensor applies is Dagster's own, plus what --partition-range START...END needs
    from dagster._core.definitions.partitions.utils.base import INVALID_PARTITION_SUBSTRINGS

    for bad in INVALID_PARTITION_SUBSTRINGS:
        with pytest.raises(ValueError, match="cannot be a partition key"):
            batch_name(f"a{bad}b.parquet")
    for name in pipeline.settings.batch_names():
        assert f"{name}...{name}".split("...") == [name, name]
