"""Model and embedding assets through Dagster, starting from a ruCLIP folder given as MM_RUCLIP_DIR."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mm_pipeline.inference.encoders import clearly_fastest, fuse, read_vectors
from mm_pipeline.model.clip import load_folder
from mm_pipeline_tests.defs.conftest import tiny_model_pipeline

# the tags a single-run backfill puts on its run
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def test_model_job_then_embeddings_per_partition(tmp_path, small_sample, tiny_ruclip_dir):
    pipeline = tiny_model_pipeline(
        tmp_path, small_sample / "batches", small_sample / "images", tiny_ruclip_dir
    )
    batches = pipeline.register()
    for batch in batches:
        assert pipeline.run("ingest_job", batch).success

    model_run = pipeline.run("model_job")
    assert model_run.success
    base_meta = model_run.asset_materializations_for_node("base_model")[0].metadata
    assert base_meta["origin"].value == f"pretrained from {tiny_ruclip_dir}"
    tuned = model_run.asset_materializations_for_node("fine_tuned_model")[0].metadata
    assert tuned["recipe"].value == "pretrained" and tuned["best_epoch"].value == 0
    assert "val_recall_at_5" in tuned["curve"].value
    checks = model_run.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("onnx_parity", True)]
    layout = pipeline.settings.layout
    passed = json.loads(layout.onnx_parity.read_text())["passed_variants"]
    assert passed[0] == "fp32"
    # MM_ONNX_VARIANT=auto: the faster passing variant as onnx_parity timed it on this CPU
    timing = json.loads(layout.onnx_parity.read_text())["timing"]["seconds"]
    assert set(timing) == set(passed)
    expected_variant = clearly_fastest(timing, passed)

    # a backfill over the range of batches in one run (BackfillPolicy.single_run on embeddings)
    backfill = pipeline.defs.resolve_job_def("embeddings_job").execute_in_process(
        instance=pipeline.instance,
        raise_on_error=False,
        tags={ASSET_PARTITION_RANGE_START_TAG: batches[0], ASSET_PARTITION_RANGE_END_TAG: batches[-1]},
    )
    assert backfill.success
    events = backfill.get_asset_materialization_events()
    assert sorted(e.partition for e in events) == batches  # both partitions, one run
    meta = events[0].materialization.metadata
    lexical_dim = load_folder(layout.model_dir("fine_tuned")).lexical.dim
    weights = json.loads(layout.model_training("fine_tuned").read_text())["fusion"]["weights"]
    assert tuned["lexical_dim"].value == lexical_dim and sum(weights.values()) == pytest.approx(1.0)
    choice = meta["onnx_variant_choice"].value
    assert choice["variant"] == expected_variant and "timed by onnx_parity" in choice["reason"]
    assert meta["onnx_variant"].value == expected_variant and meta["dims"].value == {
        "image": 64,
        "text": 64,
        "lexical": lexical_dim,
        "fused": 128 + lexical_dim,
    }
    assert meta["count"].value == sum(len(pd.read_parquet(layout.cleaned_text(b))) for b in batches)

    cleaned = pd.read_parquet(layout.cleaned_text("batch_000"), columns=["nm"])
    nm, fused = read_vectors(layout.embeddings("batch_000"), "fused")
    assert list(nm) == list(cleaned["nm"])
    assert fused.shape == (len(cleaned), 128 + lexical_dim)
    assert np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)
    parts = {c: read_vectors(layout.embeddings("batch_000"), c)[1] for c in ("image", "text", "lexical")}
    assert np.allclose(fused, fuse(parts, weights), atol=1e-6)  # the stored rule, with the stored weights
    assert (
        pd.read_parquet(layout.embeddings("batch_000"), columns=["model_version"])["model_version"].nunique()
        == 1
    )

    other = layout.embeddings("batch_001")
    before = (other.stat().st_mtime_ns, other.read_bytes())
    mine = layout.embeddings("batch_000").read_bytes()
    assert pipeline.run("embeddings_job", "batch_000").success
    assert (other.stat().st_mtime_ns, other.read_bytes()) == before
    assert layout.embeddings("batch_000").read_bytes() == mine
