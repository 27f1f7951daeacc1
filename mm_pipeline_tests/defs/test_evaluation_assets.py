"""Metric assets, their gates, the duplicates assets and publishing, end to end on a small sample."""

from __future__ import annotations

import json
import os

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.evaluation.assets import MetricGates
from mm_pipeline.defs.serving import served_batch_files
from mm_pipeline.evaluation.eval_set import load_eval_set
from mm_pipeline.evaluation.labels import TASKS
from mm_pipeline.evaluation.tasks import NEIGHBOUR_COLUMNS
from mm_pipeline_tests.defs.conftest import PERMISSIVE_GATES, Pipeline

MODELS = {"fine_tuned", "base", "tfidf", "pixels", "tfidf+pixels"}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, graph_snapshot) -> Pipeline:
    """A copy of the materialized sample graph (conftest ``graph_snapshot``): every stage has run once."""
    pipeline = graph_snapshot.copy(tmp_path_factory.mktemp("evaluation"))
    yield pipeline
    pipeline.instance.dispose()


def with_gates(pipeline: Pipeline, gates: MetricGates) -> Pipeline:
    return Pipeline(build_defs(pipeline.settings, gates), pipeline.instance, pipeline.settings)


def test_all_metrics_then_a_failed_gate_keeps_the_published_version(embedded):
    pipeline = with_gates(embedded, PERMISSIVE_GATES)
    result = pipeline.run("evaluation_job")
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    expected = {f"metric_{t.name}" for t in TASKS} | {
        "metric_duplicates",
        "similarity_index",
        "duplicate_pairs",
        "base_model_embeddings",
        "published_embeddings",
    }
    assert expected <= materialized
    checks = {
        (c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()
    }
    assert (
        all(checks.values()) and len(checks) == 9
    )  # 7 gates, one_row_per_nm of the index and published table
    assert {("similarity_index", "one_row_per_nm"), ("published_embeddings", "one_row_per_nm")} <= set(checks)

    layout = pipeline.settings.layout
    category = json.loads(layout.metric_summary("category").read_text())
    assert category["status"] == "ok" and 0 <= category["fused_f1"] <= 1
    table = pd.read_parquet(layout.metric_table("category"))
    assert set(table["model"]) == MODELS
    assert {"text", "image", "fused", "pca_fused"} <= set(table["features"])
    assert table["f1_se"].between(0, 0.5).all()
    best_reference = table.loc[table["model"].isin(["tfidf", "pixels", "tfidf+pixels"]), "f1"].max()
    assert category["fused_minus_best_reference"] == pytest.approx(category["fused_f1"] - best_reference)
    assert category["fused_minus_best_reference_se"] > 0
    neighbours = pd.read_parquet(layout.metric_neighbours("category"))
    assert neighbours.columns.tolist() == NEIGHBOUR_COLUMNS and set(neighbours["model"]) == MODELS
    at5 = neighbours[(neighbours["k"] == 5) & (neighbours["model"] == "fine_tuned")].set_index("features")
    assert category["fused_neighbour_precision_at_5"] == pytest.approx(at5.loc["fused", "precision"])
    assert 0 <= category["tfidf_neighbour_precision_at_5"] <= 1
    metadata = result.asset_materializations_for_node("metric_category")[0].metadata
    assert isinstance(metadata["fused_minus_best_reference"], dg.FloatMetadataValue)
    assert "| tfidf+pixels |" in metadata["neighbours"].value and "| pixels |" in metadata["results"].value
    isadult = json.loads(layout.metric_summary("isadult").read_text())
    assert isadult["status"] in ("ok", "insufficient data")
    duplicates = json.loads(layout.metric_summary("duplicates").read_text())
    assert duplicates["ground_truth"] == "dup_group column"

    published = layout.published_embeddings
    before = published.read_bytes()
    strict = with_gates(
        embedded,
        MetricGates(
            min_fused_f1=PERMISSIVE_GATES.min_fused_f1 | {"category": 1.01}, max_drop_vs_base=1.0, noise_z=0.0
        ),
    )
    gated = strict.run("evaluation_job")
    assert not gated.success
    checks = {c.check_name: c.passed for c in gated.get_asset_check_evaluations()}
    assert checks["category_gate"] is False
    assert "published_embeddings" not in {
        e.asset_key.to_user_string() for e in gated.get_asset_materialization_events()
    }
    assert published.read_bytes() == before
    # the checked asset itself stays materialized: a failed gate does not undo metric_category
    assert "metric_category" in {
        e.asset_key.to_user_string() for e in gated.get_asset_materialization_events()
    }


def test_eval_set_is_read_once_until_an_input_file_changes(embedded):
    settings = embedded.settings
    batches = served_batch_files(settings, embedded.instance)
    first = load_eval_set(settings.layout, batches)
    assert load_eval_set(settings.layout, batches) is first
    with pytest.raises(ValueError, match="read-only"):
        first.tuned["fused"][0, 0] = 1.0
    embeddings = settings.layout.embeddings(batches[0].name)
    stat = embeddings.stat()
    os.utime(embeddings, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    reread = load_eval_set(settings.layout, batches)
    assert reread is not first
    np.testing.assert_array_equal(reread.tuned["fused"], first.tuned["fused"])
