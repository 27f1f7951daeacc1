"""Eager automation: what the automation sensor requests as upstream assets land, tick by tick.

Materializations and check verdicts are reported without running anything, so the test checks the
conditions alone (``test_publish_gates.py`` runs the same rule for real).
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.evaluation.assets import metric_assets
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

    def report(self, *keys: str, partitions=(None,), failing: tuple[str, ...] = ()) -> None:
        """Materializations of ``keys``, each followed by the verdicts of its blocking checks, as a run
        reports them: passed, except the checks named in ``failing`` (``check`` or ``check[partition]``)."""
        graph = self.defs.resolve_asset_graph()
        for key in keys:
            for partition in partitions:
                self.instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))
                for check_key in graph.get(dg.AssetKey(key)).check_keys:
                    node = graph.get(check_key)
                    if node.blocking:
                        name = f"{check_key.name}[{partition}]" if partition else check_key.name
                        self.verdict(
                            check_key, partition if node.partitions_def else None, name not in failing
                        )

    def verdict(self, check_key: dg.AssetCheckKey, partition: str | None, passed: bool) -> None:
        latest = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(check_key.asset_key, asset_partitions=[partition] if partition else None),
            limit=1,
        ).records[0]
        self.instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=check_key.asset_key,
                check_name=check_key.name,
                passed=passed,
                partition=partition,
                target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
                    run_id=latest.run_id, storage_id=latest.storage_id, timestamp=latest.timestamp
                ),
            )
        )

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
    # one run: metrics, index and duplicates with their gates; what depends on a gate waits for its verdict
    assert requested.keys() == METRICS | {"similarity_index", "metric_duplicates"}
    ticks.report(*requested)
    assert ticks.tick().keys() == {"duplicate_pairs", "published_embeddings"}
    ticks.report("duplicate_pairs", "published_embeddings")
    assert ticks.tick() == {}


def embedded_and_evaluated(ticks: Ticks, failing: tuple[str, ...] = ()) -> None:
    ticks.add_batches("batch_000", "batch_001")
    ticks.report(*MODEL)
    ticks.tick()
    ticks.report("base_model_embeddings")
    ticks.report("embeddings", partitions=("batch_000", "batch_001"), failing=failing)


def test_a_failed_gate_holds_publishing_on_every_later_tick(ticks):
    embedded_and_evaluated(ticks)
    ticks.tick()
    ticks.report(*METRICS, "similarity_index", "metric_duplicates", failing=("category_gate",))
    for _ in range(3):
        assert "published_embeddings" not in ticks.tick()
    ticks.verdict(dg.AssetCheckKey(dg.AssetKey("metric_category"), "category_gate"), None, True)
    assert "published_embeddings" in ticks.tick()


def test_one_failed_batch_check_holds_everything_downstream(ticks):
    # dagster's all_deps_blocking_checks_passed() alone lets an unpartitioned child through when any
    # partition of its dependency passed; the pipeline's condition needs every partition
    embedded_and_evaluated(ticks, failing=("batch_vectors[batch_001]",))
    for _ in range(3):
        requested = ticks.tick()
        assert not requested.keys() & (METRICS | {"similarity_index", "metric_duplicates"})
        assert "published_embeddings" not in requested
    # with both batches passing the same tick requests them (test_metrics_index_and_publishing_follow_embeddings)
