"""Gates hold on every path: automation ticks, manual launches, stale gates and corrupt batches.

Everything here executes for real on a copy of one materialized graph (``graph_snapshot``): runs launched
the way the automation sensor, the UI or the CLI launch them, and ticks evaluated with the sensor's cursor.
"""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.automation.gating import assets_downstream_of_gates, is_gated
from mm_pipeline.defs.embeddings.assets import BATCH_CHECK
from mm_pipeline.defs.evaluation.assets import DEFAULT_FLOORS, MetricGates
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.publish.record import KEEP_VERSIONS, list_versions
from mm_pipeline_tests.defs.conftest import PERMISSIVE_GATES, Pipeline

STRICT_CATEGORY = MetricGates(
    min_fused_f1=PERMISSIVE_GATES.min_fused_f1 | {"category": 1.01}, max_drop_vs_base=1.0, noise_z=0.0
)
CATEGORY_GATE = dg.AssetCheckKey(dg.AssetKey("metric_category"), "category_gate")
BATCH_VECTORS = dg.AssetCheckKey(dg.AssetKey("embeddings"), BATCH_CHECK)


@pytest.fixture
def pipeline(tmp_path, graph_snapshot):
    pipeline = graph_snapshot.copy(tmp_path)
    yield pipeline
    pipeline.instance.dispose()


def with_gates(pipeline: Pipeline, gates: MetricGates) -> Pipeline:
    return Pipeline(build_defs(pipeline.settings, gates), pipeline.instance, pipeline.settings)


def execute(
    pipeline: Pipeline,
    assets: set[dg.AssetKey],
    checks: set[dg.AssetCheckKey] | None = None,
    partition: str | None = None,
    tags: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of ``assets`` (with their checks unless ``checks`` says which), as a launch from the UI would."""
    job = pipeline.defs.resolve_implicit_global_asset_job_def()
    return job.get_subset(asset_selection=assets, asset_check_selection=checks).execute_in_process(
        instance=pipeline.instance, partition_key=partition, raise_on_error=False, tags=tags
    )


def publish(pipeline: Pipeline) -> dg.ExecuteInProcessResult:
    """``published_embeddings`` launched alone (UI, ``dagster asset materialize --select``)."""
    return execute(pipeline, {dg.AssetKey("published_embeddings")})


def step_failure(result: dg.ExecuteInProcessResult, step: str) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_key == step:
            data = event.step_failure_data
            return (
                data.user_failure_data.description if data.user_failure_data else None
            ) or data.error.message
    raise AssertionError(f"step {step} did not fail")


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


class Ticks:
    """The automation sensor, tick by tick, executing every run it requests before the next tick."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.cursor = None
        self.runs: list[dg.ExecuteInProcessResult] = []

    def tick(self) -> dict[str, list]:
        result = dg.evaluate_automation_conditions(
            defs=self.pipeline.defs, instance=self.pipeline.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        keys = self.pipeline.defs.resolve_asset_graph().get_all_asset_keys()
        requested = {k: result.get_requested_partitions(k) for k in keys if result.get_num_requested(k)}
        by_partition: dict[str | None, set[dg.AssetKey]] = {}
        for key, partitions in requested.items():
            for partition in partitions:
                by_partition.setdefault(partition, set()).add(key)
        for partition, assets in sorted(by_partition.items(), key=lambda kv: str(kv[0])):
            self.runs.append(execute(self.pipeline, assets, partition=partition))
        return {k.to_user_string(): sorted(p, key=str) for k, p in requested.items()}


def published_state(pipeline: Pipeline) -> tuple[bytes, bytes, list[str]]:
    layout = pipeline.settings.layout
    versions = [m["version"] for m in list_versions(layout)]
    return layout.published_embeddings.read_bytes(), layout.published_manifest.read_bytes(), versions


def test_every_asset_downstream_of_a_gate_waits_for_passed_checks(tmp_path):
    defs = build_defs(PipelineSettings(data_dir=str(tmp_path)))
    graph = defs.resolve_asset_graph()
    downstream = {k.to_user_string() for k in assets_downstream_of_gates(defs)}
    assert {"published_embeddings", "embeddings", "metric_category", "duplicate_pairs"} <= downstream
    for name in downstream:
        assert is_gated(graph.get(dg.AssetKey(name)).automation_condition), name
    checks = {c.to_user_string() for c in graph.asset_check_keys if graph.get(c).blocking}
    assert "embeddings:batch_vectors" in checks and "metric_duplicates:duplicates_gate" in checks


def test_failed_gate_publishes_nothing_on_any_later_tick_until_it_passes(pipeline):
    strict = with_gates(pipeline, STRICT_CATEGORY)
    ticks = Ticks(strict)
    assert ticks.tick() == {}, "the snapshot is up to date"
    before = published_state(strict)

    # an evaluation run whose category gate fails: the metric lands, publishing is skipped inside the run
    gated = execute(strict, {dg.AssetKey("metric_category"), dg.AssetKey("published_embeddings")})
    assert not gated.success
    assert {c.check_name: c.passed for c in gated.get_asset_check_evaluations()} == {"category_gate": False}
    assert materialized(gated) == {"metric_category"}

    for _ in range(3):
        requested = ticks.tick()
        assert "published_embeddings" not in requested
    assert all("published_embeddings" not in materialized(r) for r in ticks.runs)
    assert published_state(strict) == before, "published file, manifest and versions unchanged byte for byte"

    # loosen the floor and re-evaluate the gate alone: the next tick publishes
    loose = with_gates(pipeline, PERMISSIVE_GATES)
    recheck = execute(loose, set(), checks={CATEGORY_GATE})
    assert [c.passed for c in recheck.get_asset_check_evaluations()] == [True]
    ticks.pipeline = loose
    assert ticks.tick() == {"published_embeddings": [None]}
    assert ticks.runs[-1].success and materialized(ticks.runs[-1]) == {"published_embeddings"}
    data, manifest_bytes, versions = published_state(loose)
    assert data != before[0] or manifest_bytes != before[1]
    assert len(versions) == len(before[2]) + 1
    manifest = json.loads(manifest_bytes)
    category = next(g for g in manifest["gates"] if g["check"] == "category_gate")
    latest = strict.instance.fetch_materializations(dg.AssetKey("metric_category"), limit=1).records[0]
    assert category["status"] == "passed"
    assert category["judged_materialization"]["storage_id"] == latest.storage_id
    assert ticks.tick() == {}


def test_manual_publish_after_a_failed_gate_fails_naming_it(pipeline):
    strict = with_gates(pipeline, STRICT_CATEGORY)
    before = published_state(strict)
    assert not execute(strict, {dg.AssetKey("metric_category")}).success

    launch = publish(strict)
    assert not launch.success
    message = step_failure(launch, "published_embeddings")
    assert "category_gate (metric_category): failed" in message
    assert "sub_category_gate" not in message, "only the gates that did not pass are named"
    assert published_state(strict) == before

    # the same launch with passing gates publishes and records what it was judged on
    assert execute(with_gates(pipeline, PERMISSIVE_GATES), set(), checks={CATEGORY_GATE}).success
    launch = publish(pipeline)
    assert launch.success
    meta = launch.asset_materializations_for_node("published_embeddings")[0].metadata
    assert "| category_gate | metric_category |  | passed |" in meta["gates"].value
    assert meta["version"].value in meta["versions_kept"].value


def test_a_stale_gate_blocks_publishing(pipeline):
    ticks = Ticks(pipeline)
    assert ticks.tick() == {}
    before = published_state(pipeline)
    # metric re-materialized, its gate not run: the last verdict is about an older materialization
    rerun = execute(pipeline, {dg.AssetKey("metric_category")}, checks=set())
    assert rerun.success and not rerun.get_asset_check_evaluations()

    launch = publish(pipeline)
    assert not launch.success
    message = step_failure(launch, "published_embeddings")
    assert "category_gate (metric_category): stale" in message
    assert "published_embeddings" not in ticks.tick()
    assert published_state(pipeline) == before


def test_a_gate_on_an_asset_older_than_its_inputs_blocks_publishing(pipeline):
    """Passed gates vouch only for what they judged: after a batch is re-embedded, the metrics computed
    before (on the old vectors) no longer let a version out, nor does a batch's check once the batch is
    re-ingested, until the asset is materialized again from its inputs. Before, publishing compared each
    check with its own asset only and published vectors no metric had seen."""
    before = published_state(pipeline)
    reembedded = execute(pipeline, {dg.AssetKey("embeddings")}, partition="batch_001")
    assert reembedded.success
    assert [(c.partition, c.passed) for c in reembedded.get_asset_check_evaluations()] == [
        ("batch_001", True)
    ]
    launch = publish(pipeline)
    assert not launch.success
    message = step_failure(launch, "published_embeddings")
    assert "category_gate (metric_category): outdated (metric_category was materialized before " in message
    assert "embeddings[batch_001]" in message and "batch_vectors" not in message
    assert published_state(pipeline) == before

    ingest = {dg.AssetKey(k) for k in ("raw_products", "cleaned_text", "image_tensors")}
    assert execute(pipeline, ingest, partition="batch_001").success
    message = step_failure(publish(pipeline), "published_embeddings")
    assert "batch_vectors (embeddings[batch_001]): outdated" in message
    assert "embeddings[batch_000])" not in message
    assert execute(pipeline, {dg.AssetKey("embeddings")}, partition="batch_001").success
    assert pipeline.run("evaluation_job").success  # the metrics again, then publishing
    assert published_state(pipeline) != before


def test_one_floor_set_in_the_launchpad_keeps_the_others_and_a_failed_gate_says_why(pipeline):
    """The launchpad's ``gates`` config names one task's floor: the others keep their defaults (before, the
    given dict replaced them all and they fell to 0). A failed gate states why in its description and in the
    run's log, not only in its metadata; an unknown task is refused."""
    job = pipeline.defs.resolve_implicit_global_asset_job_def()
    duplicates_gate = dg.AssetCheckKey(dg.AssetKey("metric_duplicates"), "duplicates_gate")
    run_config = {"resources": {"gates": {"config": {"min_fused_f1": {"category": 1.01}}}}}
    result = job.get_subset(
        asset_selection=set(), asset_check_selection={CATEGORY_GATE, duplicates_gate}
    ).execute_in_process(instance=pipeline.instance, run_config=run_config, raise_on_error=False)
    evaluations = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert evaluations["duplicates_gate"].metadata["floor"].value == DEFAULT_FLOORS["duplicates"] > 0
    category = evaluations["category_gate"]
    assert not category.passed and "below the floor 1.010" in category.description
    logged = [entry.user_message for entry in pipeline.instance.all_logs(result.run_id)]
    assert any(m.startswith("category_gate failed: ") and "below the floor" in m for m in logged)
    with pytest.raises(ValueError, match="no task named \\['categroy'\\]"):
        MetricGates(min_fused_f1={"categroy": 0.9})


def corrupt(path, rows: int = 5) -> None:
    """NaN image vectors in the first ``rows`` rows of an embeddings file, written in place."""
    table = pq.read_table(path)
    column = table.column("image").combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1).copy()
    values[:rows] = np.nan
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])
    index = table.column_names.index("image")
    pq.write_table(table.set_column(index, "image", vectors), path)


def test_a_corrupt_batch_fails_its_check_and_blocks_publishing(pipeline):
    ticks = Ticks(pipeline)
    assert ticks.tick() == {}
    before = published_state(pipeline)
    layout = pipeline.settings.layout
    corrupt(layout.embeddings("batch_001"))

    # the per-batch checks over the whole range in one run, as after a single-run backfill
    batches = pipeline.settings.batch_names()
    assert batches == ["batch_000", "batch_001"]
    ranged = execute(
        pipeline,
        set(),
        checks={BATCH_VECTORS},
        tags={
            "dagster/asset_partition_range_start": batches[0],
            "dagster/asset_partition_range_end": batches[-1],
        },
    )
    verdicts = {c.partition: c for c in ranged.get_asset_check_evaluations() if c.partition}
    assert verdicts["batch_000"].passed
    assert not verdicts["batch_001"].passed
    assert "batch_001: image: 5 rows with NaN or infinite values" in verdicts["batch_001"].description

    launch = publish(pipeline)
    assert not launch.success
    message = step_failure(launch, "published_embeddings")
    assert "batch_vectors (embeddings[batch_001]): failed" in message
    assert "embeddings[batch_000]" not in message
    assert ticks.tick() == {}, "nothing downstream of the corrupt batch is automated"
    assert published_state(pipeline) == before

    # the batch's own run: re-embedding it gives a valid file and a passing check; the metrics, judged before
    # on other vectors, are computed again, then publishing works
    fixed = execute(pipeline, {dg.AssetKey("embeddings")}, partition="batch_001")
    assert fixed.success
    assert [(c.partition, c.passed) for c in fixed.get_asset_check_evaluations()] == [("batch_001", True)]
    assert "outdated" in step_failure(publish(pipeline), "published_embeddings")
    assert pipeline.run("evaluation_job").success
    assert published_state(pipeline) != before


def test_published_versions_are_kept_and_pruned(pipeline):
    layout = pipeline.settings.layout
    for _ in range(KEEP_VERSIONS + 1):
        assert publish(pipeline).success
    kept = list_versions(layout)
    assert len(kept) == KEEP_VERSIONS
    current = json.loads(layout.published_manifest.read_text())
    assert current["version"] == kept[0]["version"]
    assert (
        layout.published_version(current["version"]).read_bytes() == layout.published_embeddings.read_bytes()
    )
    assert current["changes"]["previous_version"] == kept[1]["version"]
    assert current["products"] == sum(b["products"] for b in current["batches"])
    assert {g["check"] for g in current["gates"]} >= {"category_gate", "duplicates_gate", "batch_vectors"}
    assert {m["asset"] for m in current["metrics"]} >= {"metric_category", "metric_duplicates"}
