"""The duplicates metric on real groups (lamoda_hats) and on synthetic re-listings (flipkart1050)."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from mm_pipeline_tests.conftest import shared_set
from mm_pipeline_tests.defs.conftest import PERMISSIVE_GATES, tiny_model_pipeline

SUBSET = {dg.AssetKey("base_model_embeddings"), dg.AssetKey("metric_duplicates")}


def embedded_real_set(tmp_path, name: str, ruclip_dir):
    folder = shared_set(name)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / f"{name}.parquet").symlink_to(folder / "products.parquet")
    pipeline = tiny_model_pipeline(
        tmp_path,
        incoming,
        folder / "images",
        ruclip_dir,
        PERMISSIVE_GATES,
        train_batch_size=16,
        eval_fraction=0.5,
    )
    pipeline.register()
    for job, key in (("ingest_job", name), ("model_job", None), ("embeddings_job", name)):
        assert pipeline.run(job, key).success, job
    job = pipeline.defs.resolve_job_def("evaluation_job").get_subset(asset_selection=SUBSET)
    result = job.execute_in_process(instance=pipeline.instance, raise_on_error=False)
    assert result.success
    return json.loads(pipeline.settings.layout.metric_summary("duplicates").read_text())


@pytest.mark.real_data
def test_lamoda_hats_real_groups_beat_random(tmp_path, tiny_ruclip_dir):
    summary = embedded_real_set(tmp_path, "lamoda_hats", tiny_ruclip_dir)
    assert summary["ground_truth"] == "dup_group column" and summary["groups"] >= 10
    assert summary["fused_recall_at_5"] > summary["chance_recall_at_5"]
    assert 0 <= summary["fused_f1"] <= 1 and "base_fused_f1" in summary


@pytest.mark.real_data
def test_without_groups_synthetic_relistings_are_the_ground_truth(tmp_path, tiny_ruclip_dir):
    summary = embedded_real_set(tmp_path, "flipkart1050", tiny_ruclip_dir)
    assert summary["ground_truth"].startswith("synthetic re-listings")
    assert summary["groups"] == 300
    assert summary["fused_recall_at_5"] > summary["chance_recall_at_5"]
