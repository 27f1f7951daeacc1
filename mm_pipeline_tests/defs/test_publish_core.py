"""The publish core without Dagster: batch vector validation, gate verdicts, versions and pruning."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_pipeline.layout import Layout
from mm_pipeline.publish.gates import Gate, GateReading, Materialization, refusal
from mm_pipeline.publish.record import list_versions, publish_version
from mm_pipeline.publish.vectors import check_batch_vectors
from mm_pipeline_tests.conftest import dictionary_encoded_columns

MANIFEST = {"model_version": "abc123", "embed_dim": 4, "fusion_weights": {"image": 0.5, "text": 0.5}}


def unit(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def vector_column(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def write_batch(path, nm, version="abc123-int8", dim=4, **overrides):
    rows = len(nm)
    columns = {
        "nm": pa.array(nm, pa.int64()),
        "model_version": pa.array([version] * rows),
        "image": unit(rows, dim, 1),
        "text": unit(rows, dim, 2),
        "fused": unit(rows, 2 * dim, 3),
    }
    columns.update(overrides)
    arrays = {k: vector_column(v) if isinstance(v, np.ndarray) else v for k, v in columns.items()}
    pq.write_table(pa.table(arrays), path)
    return path


def test_a_valid_batch_passes(tmp_path):
    report = check_batch_vectors(
        "batch_000", write_batch(tmp_path / "b.parquet", [1, 2, 3]), [1, 2, 3], MANIFEST
    )
    assert report.passed, report.problems
    assert report.dims == {"image": 4, "text": 4, "fused": 8}
    assert report.message == "batch_000: 3 products, vectors valid"


@pytest.mark.parametrize(
    ("overrides", "accepted", "problem"),
    [
        (
            {"image": np.full((3, 4), np.nan, np.float32)},
            [1, 2, 3],
            "image: 3 rows with NaN or infinite values",
        ),
        ({"text": unit(3, 4) * 2}, [1, 2, 3], "text: 3 rows whose norm is not 1"),
        ({"image": unit(3, 5)}, [1, 2, 3], "image: 5-d, documented 4-d"),
        ({"lexical": unit(3, 6) * 0.5}, [1, 2, 3], "lexical: 3 rows whose norm is not 1"),
        ({}, [1, 2, 3, 4], "1 accepted products without vectors (e.g. nm 4)"),
        ({}, [1, 2], "1 rows for products not accepted in this batch (e.g. nm 3)"),
        ({"model_version": pa.array(["old-int8"] * 3)}, [1, 2, 3], "made by model old-int8"),
    ],
)
def test_each_problem_fails_the_batch_and_names_it(tmp_path, overrides, accepted, problem):
    path = write_batch(tmp_path / "b.parquet", [1, 2, 3], **overrides)
    report = check_batch_vectors("batch_007", path, accepted, MANIFEST)
    assert not report.passed
    assert report.message.startswith("batch_007: ")
    assert problem in report.message


def test_duplicate_rows_and_a_missing_file(tmp_path):
    report = check_batch_vectors("b", write_batch(tmp_path / "b.parquet", [1, 1, 2]), [1, 2], MANIFEST)
    assert "1 products with more than one row" in report.message
    assert "no embeddings file" in check_batch_vectors("b", tmp_path / "none.parquet", [1], MANIFEST).message


def test_lexical_of_one_width_is_valid_and_counted_in_fused(tmp_path):
    manifest = {**MANIFEST, "fusion_weights": {"image": 0.4, "text": 0.4, "lexical": 0.2}}
    path = write_batch(tmp_path / "b.parquet", [1, 2], lexical=unit(2, 6), fused=unit(2, 14))
    assert check_batch_vectors("b", path, [1, 2], manifest).passed
    report = check_batch_vectors("b", write_batch(tmp_path / "c.parquet", [1, 2]), [1, 2], manifest)
    assert "missing fused channel columns lexical" in report.message


def reading(**kwargs) -> GateReading:
    base = {"check": "category_gate", "asset": "metric_category", "latest": Materialization(10, "run-b", 2.0)}
    return GateReading(**(base | kwargs))


def test_gate_statuses():
    judged = Materialization(10, "run-b", 2.0)
    assert reading(passed=True, judged=judged, evaluation_run_id="run-c").status == "passed"
    assert reading(passed=False, judged=judged, evaluation_run_id="run-c").status == "failed"
    assert reading().status == "missing"
    older = Materialization(7, "run-a", 1.0)
    assert reading(passed=True, judged=older, evaluation_run_id="run-c").status == "stale"
    # checked in the run that materialized: current even without a recorded target
    assert reading(passed=True, evaluation_run_id="run-b").status == "passed"
    assert reading(passed=True, evaluation_run_id="run-x", evaluated_at=1.5).status == "stale"


def test_a_gate_on_an_asset_older_than_an_input_is_outdated():
    """The metric passed on its latest materialization, but a batch was re-embedded after it (a later event
    in the log): what passed was computed from other vectors."""
    judged = Materialization(10, "run-b", 2.0)
    passed = {"passed": True, "judged": judged, "evaluation_run_id": "run-b"}
    embedded_after = Materialization(12, "run-e0123456", 3.0)
    outdated = reading(**passed, newest_input=embedded_after, newest_input_name="embeddings[batch_002]")
    assert outdated.status == "outdated"
    assert outdated.explain() == (
        "category_gate (metric_category): outdated (metric_category was materialized before "
        "embeddings[batch_002], which run run-e012 materialized after it; re-materialize metric_category with "
        "its checks)"
    )
    assert "category_gate (metric_category)" in refusal([outdated])
    embedded_before = Materialization(9, "run-a", 1.0)
    assert (
        reading(**passed, newest_input=embedded_before, newest_input_name="embeddings[b]").status == "passed"
    )


def test_a_gate_knows_the_partitions_its_asset_is_made_from():
    gate = Gate(
        "metric_category", "category_gate", False, (("base_model_embeddings", False), ("embeddings", True))
    )
    assert gate.input_partitions(None, ["b0", "b1"]) == [
        ("base_model_embeddings", None),
        ("embeddings", "b0"),
        ("embeddings", "b1"),
    ]
    batch = Gate("embeddings", "batch_vectors", True, (("cleaned_text", True), ("onnx_model", False)))
    assert batch.input_partitions("b1", ["b0", "b1"]) == [("cleaned_text", "b1"), ("onnx_model", None)]
    assert Gate.from_dict(json.loads(json.dumps(batch.as_dict()))) == batch  # as kept in asset metadata
    # metadata written before inputs were recorded: no inputs, so never outdated
    assert Gate.from_dict({"asset": "a", "check": "c", "per_partition": False}).inputs == ()


def test_refusal_names_every_gate_that_did_not_pass():
    judged = Materialization(10, "run-b", 2.0)
    readings = [
        reading(passed=True, judged=judged, evaluation_run_id="r"),
        reading(
            check="isadult_gate", asset="metric_isadult", passed=False, judged=judged, verdict="F1 0.1 < 0.3"
        ),
        reading(check="batch_vectors", asset="embeddings", partition="batch_001"),
    ]
    message = refusal(readings)
    assert "2 of 3 gates did not pass" in message
    assert "isadult_gate (metric_isadult): failed (F1 0.1 < 0.3)" in message
    assert "batch_vectors (embeddings[batch_001]): missing" in message
    assert "category_gate" not in message
    assert refusal(readings[:1]) is None
    assert refusal([]) is not None, "no gates at all never publishes"


def test_versions_are_kept_pinnable_and_pruned(tmp_path):
    layout = Layout(tmp_path)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pa.table({"nm": [1, 2], "batch": ["b0", "b0"]})
    for i in range(4):
        manifest = {
            "products": 2 + i,
            "batches": [{"batch": "b0", "products": 2 + i}],
            "model_versions": ["v"],
        }
        publish_version(layout, frame.slice(0, 1 + i % 2), manifest, keep=3, now=start + timedelta(minutes=i))
    kept = list_versions(layout)
    assert [m["products"] for m in kept] == [5, 4, 3]
    assert len(list(layout.published_versions_dir.iterdir())) == 6
    current = json.loads(layout.published_manifest.read_text())
    assert current == kept[0]
    assert current["changes"]["previous_version"] == kept[1]["version"]
    assert current["changes"]["products_delta"] == 1
    assert (
        layout.published_embeddings.read_bytes() == layout.published_version(current["version"]).read_bytes()
    )
    pinned = pd.read_parquet(layout.published_version(kept[1]["version"]))
    assert len(pinned) == 1


def test_published_vectors_are_stored_without_a_dictionary(tmp_path):
    """As in the embeddings files, only the repeated strings get dictionary pages: on vector floats they
    make the file larger and slower to write and read."""
    layout = Layout(tmp_path)
    served = write_batch(tmp_path / "b0.parquet", [1, 2, 3])
    frame = pd.read_parquet(served, columns=["nm", "model_version", "fused"]).assign(batch="b0")
    manifest = {"products": 3, "batches": [{"batch": "b0", "products": 3}], "model_versions": ["abc123"]}
    publish_version(layout, pa.Table.from_pandas(frame, preserve_index=False), manifest)
    assert dictionary_encoded_columns(layout.published_embeddings) == {"model_version", "batch"}
    published = pd.read_parquet(layout.published_embeddings)
    np.testing.assert_array_equal(np.stack(published["fused"]), np.stack(frame["fused"]))


def test_the_published_file_keeps_the_embeddings_types_and_its_manifest_says_what_it_holds(tmp_path):
    """A consumer reads the published file as it reads ``embed``'s output: ``fused`` a fixed-size list of
    float32, plain strings (before, a pandas round trip made it a variable-size list and large strings). The
    manifest names the ONNX variant, the fused width and the fusion weights, and what the width was before."""
    from mm_pipeline.inference.encoders import read_vectors
    from mm_pipeline.publish.catalogue import publish_catalogue, read_served_vectors

    layout = Layout(tmp_path)
    layout.onnx_dir.mkdir(parents=True)
    (layout.onnx_dir / "manifest.json").write_text(json.dumps(MANIFEST))
    for batch, nm in (("b0", [1, 2]), ("b1", [3])):
        layout.embeddings(batch).parent.mkdir(parents=True, exist_ok=True)
        write_batch(layout.embeddings(batch), nm)
    for _ in range(2):
        publication = publish_catalogue(
            layout, read_served_vectors(layout, ["b0", "b1"]), ["b0", "b1"], "run", [], []
        )
    published, embedded = pq.read_schema(layout.published_embeddings), pq.read_schema(layout.embeddings("b0"))
    assert published.field("fused").type == embedded.field("fused").type == pa.list_(pa.float32(), 8)
    assert published.field("model_version").type == published.field("batch").type == pa.string()
    manifest = publication.version.manifest
    assert manifest["model_versions"] == ["abc123-int8"] and manifest["variants"] == ["int8"]
    assert manifest["fused_dims"] == 8 and manifest["fusion_weights"] == MANIFEST["fusion_weights"]
    assert manifest["changes"]["fused_dims_before"] == 8
    nm, fused = read_vectors(layout.published_embeddings)  # the embeddings files' reader reads it too
    assert list(nm) == [1, 2, 3] and fused.shape == (3, 8)
    assert pq.read_table(layout.published_embeddings, columns=["batch"])["batch"].to_pylist() == [
        "b0",
        "b0",
        "b1",
    ]
