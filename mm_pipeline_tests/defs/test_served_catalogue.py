"""What is served stays consistent: one model version, one row per nm, per-batch records that match the files,
retired batches that stop being served. Real runs on a copy of one materialized graph (``graph_snapshot``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_pipeline.catalog.lifecycle import batch_changes
from mm_pipeline.cli import main as cli_main
from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.automation import stale
from mm_pipeline.defs.in_process.runner import register_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline.defs.serving import ONE_ROW_PER_NM, current_model_version, latest_ingest, stale_batches
from mm_pipeline.evaluation.catalogue_index import read_index_lookup
from mm_pipeline.inference.encoders import CHANNELS, OnnxEncoders, export_variant_of, tower_file
from mm_pipeline.model.files import MANIFEST_FILE
from mm_pipeline.publish.vectors import MixedModelVersionsError, one_row_per_nm_problem, require_model_version
from mm_pipeline.storage import pin
from mm_pipeline_tests.defs.conftest import PERMISSIVE_GATES, Pipeline
from mm_pipeline_tests.defs.test_publish_gates import execute, published_state, step_failure

EMBEDDINGS = dg.AssetKey("embeddings")
INDEX, PUBLISHED = dg.AssetKey("similarity_index"), dg.AssetKey("published_embeddings")
RANGE = {"dagster/asset_partition_range_start": "batch_000", "dagster/asset_partition_range_end": "batch_001"}


@pytest.fixture
def pipeline(tmp_path, graph_snapshot):
    pipeline = graph_snapshot.copy(tmp_path)
    yield pipeline
    pipeline.instance.dispose()


def records(pipeline: Pipeline, batch: str) -> list[int]:
    found = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=EMBEDDINGS, asset_partitions=[batch]), limit=100
    ).records
    return [r.storage_id for r in found]


def file_state(path) -> tuple[int, int, bytes]:
    return path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()


def set_model_version(path, version: str) -> None:
    """Mark every row of an embeddings file as made by another model (what a batch left out of a re-embedding
    after a retrain looks like)."""
    table = pq.read_table(path)
    index = table.column_names.index("model_version")
    pq.write_table(table.set_column(index, "model_version", pa.array([version] * table.num_rows)), path)


def test_require_model_version_names_every_stale_batch(tmp_path):
    paths = {}
    for batch, versions in {
        "b0": ["v2-int8"] * 3,
        "b1": ["v1-int8"] * 2,
        "b2": ["v2-int8", "v1-int8"],
    }.items():
        paths[batch] = tmp_path / f"{batch}.parquet"
        pq.write_table(pa.table({"nm": list(range(len(versions))), "model_version": versions}), paths[batch])
    with pytest.raises(MixedModelVersionsError) as raised:
        require_model_version(paths, "v2-int8")
    assert raised.value.stale == {"b1": ["v1-int8"], "b2": ["v1-int8", "v2-int8"]}
    assert "b1 (v1-int8); b2 (v1-int8, v2-int8)" in str(raised.value) and "v2-int8" in str(raised.value)
    assert require_model_version({"b0": paths["b0"]}, "v2-int8") == "v2-int8"
    with pytest.raises(MixedModelVersionsError, match="b1"):  # without an expected version: the batches agree
        require_model_version(paths | {"b3": paths["b0"]})
    assert one_row_per_nm_problem([1, 2, 3], ["a", "a", "b"]) is None
    assert (
        one_row_per_nm_problem([1, 2, 1], ["a", "a", "b"])
        == "1 product(s) with more than one row: nm 1 in a, b"
    )


def test_every_consumer_refuses_a_stale_batch_and_automation_re_embeds_it(pipeline, monkeypatch, capsys):
    layout = pipeline.settings.layout
    before = published_state(pipeline)
    set_model_version(layout.embeddings("batch_001"), "0ldm0de1-int8")

    for key, step in [(INDEX, "similarity_index"), (dg.AssetKey("metric_category"), "metric_category")]:
        run = execute(pipeline, {key})
        assert not run.success
        message = step_failure(run, step)
        assert "batch_001 (0ldm0de1-int8)" in message and "batch_000" not in message
    run = execute(pipeline, {PUBLISHED})
    assert "not publishing: 1 batch(es) not embedded by model" in step_failure(run, "published_embeddings")
    assert published_state(pipeline) == before

    nm = pd.read_parquet(layout.embeddings("batch_000"), columns=["nm"])["nm"].iloc[0]
    assert cli_main(["similar", "--nm", str(nm), "--data-dir", str(pipeline.settings.data_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the runs' own log lines
    assert err.startswith("error: 1 batch(es) not embedded by model") and "batch_001 (0ldm0de1-int8)" in err

    # the stale_embeddings sensor, once eager automation had its time, requests exactly that batch, once
    sensor = pipeline.defs.resolve_sensor_def("stale_embeddings")

    def tick():
        with dg.build_sensor_context(
            instance_ref=pipeline.instance.get_ref(),  # as the sensor daemon evaluates it
            resources={"settings": pipeline.settings},
            repository_def=pipeline.defs.get_repository_def(),
        ) as context:
            return sensor.evaluate_tick(context)

    assert tick().skip_message.startswith("no export yet, or eager automation")
    monkeypatch.setattr(stale, "STALE_GRACE_S", 0.0)
    requests = tick().run_requests
    version = current_model_version(pipeline.settings)
    ingested = latest_ingest(pipeline.instance, "batch_001")
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("batch_001", f"batch_001@{version}#{ingested}")
    ]
    assert pipeline.run("embeddings_job", "batch_001").success
    assert tick().skip_message == "every batch is embedded by the current model since its latest ingest"
    assert execute(pipeline, {INDEX}).success
    assert cli_main(["similar", "--nm", str(nm), "--data-dir", str(pipeline.settings.data_dir)]) == 0

    # a batch whose embedding never happened (its run failed), and one ingested again after it was embedded
    # (its file changed): both were "every batch is embedded" before
    layout.embeddings("batch_000").unlink()
    assert pipeline.run("ingest_job", "batch_001").success
    reasons = stale_batches(pipeline.settings, pipeline.instance)
    assert reasons == {"batch_000": "not embedded", "batch_001": "embedded before its latest ingest"}
    requests = tick().run_requests
    assert [r.partition_key for r in requests] == ["batch_000", "batch_001"]
    assert requests[1].run_key == f"batch_001@{version}#{latest_ingest(pipeline.instance, 'batch_001')}"
    assert requests[1].run_key != f"batch_001@{version}#{ingested}"  # a new ingest gets a new run


def test_a_range_run_failing_on_one_batch_keeps_every_file_and_record(pipeline):
    layout = pipeline.settings.layout
    first = layout.embeddings("batch_000")
    files = {b: file_state(layout.embeddings(b)) for b in ("batch_000", "batch_001")}
    recorded = {b: records(pipeline, b) for b in files}
    broken = layout.cleaned_text("batch_001")
    broken.rename(broken.with_suffix(".away"))

    run = pipeline.defs.resolve_job_def("embeddings_job").execute_in_process(
        instance=pipeline.instance, raise_on_error=False, tags=RANGE
    )
    assert not run.success
    assert {b: file_state(layout.embeddings(b)) for b in files} == files, (
        "batch_000 was embedded, not swapped in"
    )
    assert {b: records(pipeline, b) for b in files} == recorded
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")], "no temporaries left behind"

    broken.with_suffix(".away").rename(broken)
    run = pipeline.defs.resolve_job_def("embeddings_job").execute_in_process(
        instance=pipeline.instance, raise_on_error=False, tags=RANGE
    )
    assert run.success
    for batch in files:
        assert file_state(layout.embeddings(batch))[:2] != files[batch][:2]
        assert len(records(pipeline, batch)) == len(recorded[batch]) + 1


def with_incoming(pipeline: Pipeline, incoming) -> Pipeline:
    settings = PipelineSettings(**{**pipeline.settings.model_dump(), "incoming_dir": str(incoming)})
    return Pipeline(build_defs(settings, PERMISSIVE_GATES), pipeline.instance, settings)


def sensor_tick(pipeline: Pipeline, cursor: str | None):
    sensor = pipeline.defs.resolve_sensor_def("new_batch_files")
    with dg.build_sensor_context(
        instance_ref=pipeline.instance.get_ref(),  # resolves run requests against the tick's added partitions
        cursor=cursor,
        resources={"settings": pipeline.settings},
        repository_def=pipeline.defs.get_repository_def(),
    ) as context:
        result = sensor.evaluate_tick(context)
    for request in result.dynamic_partitions_requests:  # applied as the sensor daemon does
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            pipeline.instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        else:
            for key in request.partition_keys:
                pipeline.instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def logged(capfd) -> str:
    """What the sensor's console logger printed since the last call."""
    out, err = capfd.readouterr()
    return out + err


def served(pipeline: Pipeline) -> tuple[pd.DataFrame, pd.DataFrame]:
    layout = pipeline.settings.layout
    published = pd.read_parquet(layout.published_embeddings, columns=["nm", "batch"])
    return published, pd.read_parquet(layout.index_lookup)


def refresh(pipeline: Pipeline) -> None:
    """What the batch sensor requests after a batch change: ``evaluation_job`` (the metrics on the served
    batches, the index, publishing)."""
    run = pipeline.run("evaluation_job")
    assert run.success
    verdicts = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in run.get_asset_check_evaluations()
        if c.check_name == ONE_ROW_PER_NM
    }
    assert verdicts == {
        ("similarity_index", ONE_ROW_PER_NM): True,
        ("published_embeddings", ONE_ROW_PER_NM): True,
    }


def test_renamed_and_deleted_batch_files_retire_their_partitions(pipeline, tmp_path, capfd):
    incoming = shutil.copytree(pipeline.settings.incoming_dir, tmp_path / "incoming")
    pipeline = with_incoming(pipeline, incoming)
    layout = pipeline.settings.layout
    first = sensor_tick(pipeline, None)
    assert not first.run_requests and not first.dynamic_partitions_requests
    products = {
        b: set(pd.read_parquet(layout.raw_accepted(b), columns=["nm"])["nm"])
        for b in ("batch_000", "batch_001")
    }

    # batch_001.parquet re-exported as batch_001_fixed.parquet with the same products
    pd.read_parquet(incoming / "batch_001.parquet").to_parquet(
        incoming / "batch_001_fixed.parquet", index=False
    )
    (incoming / "batch_001.parquet").unlink()
    renamed = sensor_tick(pipeline, first.cursor)
    assert pipeline.instance.get_dynamic_partitions("catalogue_batches") == ["batch_000", "batch_001_fixed"]
    assert [(r.job_name, r.partition_key) for r in renamed.run_requests] == [
        ("ingest_job", "batch_001_fixed"),
        ("evaluation_job", None),
    ]
    assert (
        "batch_001: file gone, re-exported as batch_001_fixed.parquet; partition batch_001 retired"
        in logged(capfd)
    )
    assert pipeline.run("ingest_job", "batch_001_fixed").success
    assert pipeline.run("embeddings_job", "batch_001_fixed").success
    refresh(pipeline)
    published, lookup = served(pipeline)
    assert set(published["batch"]) == set(lookup["batch"]) == {"batch_000", "batch_001_fixed"}
    assert published["nm"].is_unique and set(published["nm"]) == products["batch_000"] | products["batch_001"]
    nm = next(iter(products["batch_001"]))
    assert cli_main(["similar", "--nm", str(nm), "--data-dir", str(pipeline.settings.data_dir)]) == 0

    # the old partition registered again beside its successor (what the sensor did before): nothing is served
    pipeline.instance.add_dynamic_partitions("catalogue_batches", ["batch_001"])
    before = published_state(pipeline)
    for key, step in [(INDEX, "similarity_index"), (PUBLISHED, "published_embeddings")]:
        message = step_failure(execute(pipeline, {key}), step)
        assert "with more than one row: nm" in message and "in batch_001, batch_001_fixed" in message
    assert published_state(pipeline) == before
    pipeline.instance.delete_dynamic_partition("catalogue_batches", "batch_001")

    # a deleted file: its partition is retired and its products leave the index and the published table
    (incoming / "batch_001_fixed.parquet").unlink()
    deleted = sensor_tick(pipeline, renamed.cursor)
    assert pipeline.instance.get_dynamic_partitions("catalogue_batches") == ["batch_000"]
    assert [(r.job_name, r.partition_key) for r in deleted.run_requests] == [("evaluation_job", None)]
    retired = (
        f"batch_001_fixed: file gone; partition retired, its {len(products['batch_001'])} products are no"
    )
    assert retired in logged(capfd)
    refresh(pipeline)
    published, lookup = served(pipeline)
    assert set(published["nm"]) == set(lookup["nm"]) == products["batch_000"]
    assert sensor_tick(pipeline, deleted.cursor).run_requests == []


def test_batch_changes_tells_new_changed_vanished_and_renamed():
    products = {"a": {1, 2, 3, 4}, "b": {5, 6}, "c2": {1, 2, 3}, "d": {9}}
    changes = batch_changes(
        registered=["a", "b", "x"],
        files={"b": "s2", "c2": "s", "d": "s"},
        seen={"b": "s1"},
        products_of=lambda batch: products.get(batch, set()),
    )
    assert (changes.new, changes.changed, changes.vanished) == (["c2", "d"], ["b"], ["a", "x"])
    assert changes.renamed == {"a": "c2"}  # 3 of a's 4 products; x's products are unknown


def test_the_in_process_runner_retires_batches_whose_file_is_gone():
    instance = dg.DagsterInstance.ephemeral()
    assert register_batches(instance, ["batch_000", "batch_001"]) == []
    lines = register_batches(instance, ["batch_000", "batch_001_fixed"])
    assert instance.get_dynamic_partitions("catalogue_batches") == ["batch_000", "batch_001_fixed"]
    assert lines == ["batch_001: file gone; partition retired, its products are no longer served"]


def test_text_and_photo_queries_are_encoded_by_the_export_that_made_the_index(pipeline, capsys, monkeypatch):
    layout, data_dir = pipeline.settings.layout, str(pipeline.settings.data_dir)
    # the index's metadata shows what it serves on a few products (their 5 nearest others each)
    [record] = pipeline.instance.fetch_materializations(INDEX, limit=1).records
    shown = record.asset_materialization.metadata["example_neighbours"].value.splitlines()
    assert shown[0] == "| query | rank | nm | cosine | title |" and len(shown) == 2 + 3 * 5
    version = read_index_lookup(layout)["model_version"].iloc[0]
    encoders = OnnxEncoders(layout.onnx_dir, export_variant_of(layout.onnx_dir, version))
    products = pd.read_parquet(layout.cleaned_text("batch_000"))
    product = products[~encoders.tokenizer.mostly_unknown(products["text"].tolist())].iloc[0]
    stored = pd.read_parquet(layout.embeddings("batch_000")).set_index("nm").loc[product["nm"]]

    # in the fused layout: the query's text-tower vector stands in for its photo, then its text and lexical
    query = encoders.encode_queries([product["text"]])[0]
    weights, total = encoders.fusion_weights, sum(encoders.fusion_weights.values())
    channels = [c for c in CHANNELS if c in weights]
    blocks = np.split(query, np.cumsum([encoders.dims[c] for c in channels])[:-1])
    stands_in = {"image": "text", "text": "text", "lexical": "lexical"}
    for channel, block in zip(channels, blocks, strict=True):
        expected = np.sqrt(weights[channel] / total) * np.asarray(stored[stands_in[channel]])
        np.testing.assert_allclose(block, expected, atol=1e-4)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)

    assert cli_main(["similar", "--text", product["text"], "--k", "3", "--data-dir", data_dir]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("nearest to «") and len(lines) == 4
    rows = [(int(line.split()[0]), float(line.split()[1])) for line in lines[1:]]
    assert product["nm"] in [nm for nm, score in rows if score == rows[0][1]]  # first, or tied (a re-listing)

    # a query the tokenizer mostly cannot read is ranked by its words, and said so; one it cannot read at all
    # and without a known word is refused
    word = product["text"].split()[0]
    assert cli_main(["similar", "--text", f"შავი მატყლის ქუდი {word}", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().err.startswith("note: the tokenizer knows few of the query's tokens")
    assert cli_main(["similar", "--text", "შავი მატყლის ქუდი", "--data-dir", data_dir]) == 2
    assert capsys.readouterr().err.startswith("error: the model reads nothing in «შავი მატყლის ქუდი»")
    assert cli_main(["similar", "--text", "<b> </b>", "--data-dir", data_dir]) == 2
    assert capsys.readouterr().err == "error: --text is empty once cleaned\n"
    with monkeypatch.context() as env:  # the towers run on the threads MM_WORKERS gives, as in the assets
        env.setenv("MM_WORKERS", "many")
        assert cli_main(["similar", "--text", product["text"], "--data-dir", data_dir]) == 2
        assert capsys.readouterr().err == "error: MM_WORKERS='many' is not a positive integer\n"

    # a photo: a fused vector of words alone cannot match one; where it weighs a tower, a missing photo is
    # named and a product's own is matched
    photo = Path(pipeline.settings.images_dir) / f"{product['nm']}.jpg"
    manifest = pin(layout.onnx_dir) / MANIFEST_FILE
    exported = json.loads(manifest.read_text())
    weighs_photos = bool(exported["fusion_weights"].get("image") or exported["fusion_weights"].get("text"))
    if not weighs_photos:
        assert cli_main(["similar", "--image", str(photo), "--data-dir", data_dir]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: the served vector reads no photo (fusion weights")
        assert err.endswith("; search by --text or --nm\n")
        # the same export had it weighed the text tower: matched across modalities, and said so
        weights = {"image": 0.0, "text": 0.5, "lexical": 0.5}
        manifest.write_text(json.dumps(exported | {"fusion_weights": weights}))
    assert cli_main(["similar", "--image", str(photo.with_name("absent.jpg")), "--data-dir", data_dir]) == 2
    assert capsys.readouterr().err.endswith("error: --image: missing image: absent.jpg not found\n")
    assert cli_main(["similar", "--image", str(photo), "--k", "3", "--data-dir", data_dir]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith(f"nearest to photo {photo} (") and len(lines) == 4
    assert weighs_photos or captured.err.startswith("note: the served vector weighs the photo channel 0")
    manifest.write_text(json.dumps(exported))

    # a tower file gone from the export: named, not a traceback
    tower = tower_file(layout.onnx_dir, "text", encoders.variant)
    tower.rename(tower.with_suffix(".away"))
    assert cli_main(["similar", "--text", product["text"], "--data-dir", data_dir]) == 1
    assert capsys.readouterr().err == (
        f"error: the {encoders.variant} text tower {pin(layout.onnx_dir) / tower.name} is missing; "
        "rematerialize onnx_model\n"
    )
    tower.with_suffix(".away").rename(tower)
    damaged = tower.read_bytes()
    tower.write_bytes(b"not a model")
    assert cli_main(["similar", "--text", product["text"], "--data-dir", data_dir]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot load the {encoders.variant} towers of ")
    tower.write_bytes(damaged)

    # an export other than the one that made the index's vectors is never used to encode a query
    manifest.write_text(json.dumps(exported | {"model_version": "0th3r"}))
    assert cli_main(["similar", "--text", product["text"], "--data-dir", data_dir]) == 1
    err = capsys.readouterr().err
    assert f"the vectors are of model {version}, the export in" in err and "is model 0th3r" in err
    assert err.endswith("; rematerialize embeddings, then similarity_index\n")
    shutil.rmtree(pin(layout.onnx_dir))
    assert cli_main(["similar", "--text", product["text"], "--data-dir", data_dir]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no exported model under") and "materialize onnx_model first" in err
