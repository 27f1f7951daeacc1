"""Eager automation: what the automation sensor requests as upstream assets land, tick by tick.

Materializations are reported without running anything, so the test checks the conditions alone.
"""

from __future__ import annotations

import dagster as dg
import pytest

from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.metrics.assets import metric_assets
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings

INGEST = ("raw_products", "cleaned_text", "image_tensors")
MODEL = ("base_model", "fine_tuned_model", "onnx_model")
METRICS = {a.key.to_user_string() for a in metric_assets}


class Ticks:
    """Consecutive automation ticks sharing one cursor, as the sensor daemon runs them."""

    def __init__(self, tmp_path):
        self.defs = build_defs(PipelineSettings(data_dir=str(tmp_path / "data")))
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor = None

    def report(self, *keys: str, partitions=(None,)) -> None:
        for key in keys:
            for partition in partitions:
                self.instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))

    def add_batches(self, *names: str) -> None:
        self.instance.add_dynamic_partitions(catalogue_batches.name, list(names))
        self.report(*INGEST, partitions=names)

    def tick(self) -> dict[str, list]:
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        keys = self.defs.resolve_asset_graph().get_all_asset_keys()
        return {
            key.to_user_string(): sorted(result.get_requested_partitions(key), key=str)
            for key in keys
            if result.get_num_requested(key)
        }


@pytest.fixture
def ticks(tmp_path) -> Ticks:
    """Ticks after a first one on the empty instance: the daemon's baseline that "updated" is relative to."""
    ticks = Ticks(tmp_path)
    assert ticks.tick() == {}
    return ticks


def test_nothing_runs_before_a_model_exists(ticks):
    ticks.add_batches("batch_000")
    # embeddings wait for the ONNX model; nothing downstream of a missing asset is requested
    assert "embeddings" not in ticks.tick()


def test_embeddings_follow_the_model_and_new_batches(ticks):
    ticks.add_batches("batch_000", "batch_001")
    ticks.report(*MODEL)
    first = ticks.tick()
    assert first["embeddings"] == ["batch_000", "batch_001"]
    assert ticks.tick() == {}, "a tick requests each update once"

    ticks.report("onnx_model")
    assert ticks.tick() == {"embeddings": ["batch_000", "batch_001"]}, "a new model re-embeds every batch"

    ticks.add_batches("batch_002")
    assert ticks.tick()["embeddings"] == ["batch_002"], "a new batch is embedded alone"


def test_metrics_index_and_publishing_follow_embeddings(ticks):
    ticks.add_batches("batch_000", "batch_001")
    ticks.report(*MODEL)
    ticks.tick()
    ticks.report("base_model_embeddings")
    ticks.report("embeddings", partitions=("batch_000", "batch_001"))
    requested = ticks.tick()
    # one run: metrics, index and duplicates, then publishing behind their blocking gates
    assert requested.keys() == METRICS | {
        "similarity_index",
        "metric_duplicates",
        "duplicate_pairs",
        "published_embeddings",
    }
    ticks.report(*requested)
    assert ticks.tick() == {}
