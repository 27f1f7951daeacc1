"""The deployment instance against a real PostgreSQL server: storage, a materialization, sensor and schedule ticks.

The server is Debian's PostgreSQL started by the session fixture ``postgres_server`` (ops/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import yaml
from dagster._core.instance.ref import InstanceRef

from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import PipelineSettings
from mm_pipeline_tests.conftest import REPO

DEPLOY_INSTANCE = REPO / "deploy" / "dagster.yaml"


def sql(postgres, dbname: str, query: str, *args) -> list[tuple]:
    conn = postgres.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()
    finally:
        conn.close()


def test_deploy_dagster_yaml_loads_against_postgres(postgres_server, tmp_path, monkeypatch):
    """deploy/dagster.yaml, exactly as shipped, gives a Postgres-backed, queued, Docker-launching instance."""
    from dagster_docker import DockerRunLauncher  # deploy/dagster.yaml's run launcher (dev extra)
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    db = postgres_server.create_database("deploy_yaml")
    for key, value in postgres_server.env(db).items():
        monkeypatch.setenv(key, value)
    instance = dg.DagsterInstance.from_ref(
        InstanceRef.from_dir(str(tmp_path), config_dir=str(DEPLOY_INSTANCE.parent))
    )
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.scheduler).__name__ == "DagsterDaemonScheduler"
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["mm_pipeline_network"]
        assert {"DAGSTER_POSTGRES_HOST", "MM_DATA_DIR", "MM_INCOMING_DIR", "MM_IMAGES_DIR"} <= set(
            launcher.env_vars
        )
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs >= 1
        assert concurrency.pool_config.default_pool_limit == 1

        # The instance really talks to this server: schema created, a write lands in the database.
        assert instance.get_runs() == []
        instance.add_dynamic_partitions(catalogue_batches.name, ["probe"])
    finally:
        instance.dispose()
    tables = {
        row[0]
        for row in sql(postgres_server, db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {
        "runs",
        "event_logs",
        "dynamic_partitions",
        "job_ticks",
        "instigators",
        "alembic_version",
    } <= tables
    assert sql(postgres_server, db, 'SELECT "partition" FROM dynamic_partitions') == [("probe",)]


def postgres_instance(home: Path) -> dg.DagsterInstance:
    """An instance whose only configuration is deploy/dagster.yaml's ``storage`` block (Postgres via env)."""
    deploy = yaml.safe_load(DEPLOY_INSTANCE.read_text())
    assert deploy["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": deploy["storage"], "telemetry": {"enabled": False}})
    )
    return dg.DagsterInstance.from_config(str(home))


def sensor_tick(sensor, instance, defs, settings, cursor=None):
    """One evaluation as the sensor daemon does it: from an instance ref, with the repository to resolve
    partitioned run requests against the partitions that exist once the tick's add-requests are applied."""
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        cursor=cursor,
        resources={"settings": settings},
        repository_def=defs.get_repository_def(),
    ) as context:
        return sensor.evaluate_tick(context)


def test_sensor_schedule_and_materialization_on_postgres(
    postgres_server, small_sample, tmp_path, monkeypatch
):
    """A sensor tick, a partitioned ingest run and schedule ticks, all recorded in PostgreSQL."""
    db = postgres_server.create_database("pipeline_ops")
    for key, value in postgres_server.env(db).items():
        monkeypatch.setenv(key, value)
    incoming = shutil.copytree(small_sample / "batches", tmp_path / "incoming")
    settings = PipelineSettings(
        data_dir=str(tmp_path / "data"),
        incoming_dir=str(incoming),
        images_dir=str(small_sample / "images"),
        workers=1,
    )
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def("new_batch_files")
    schedule = defs.resolve_schedule_def("nightly_refresh")
    tick_time = dt.datetime(2026, 3, 1, 2, 0, tzinfo=ZoneInfo("Europe/Moscow"))
    batches = settings.batch_names()
    assert batches == ["batch_000", "batch_001"]

    instance = postgres_instance(tmp_path / "home")
    try:
        # Sensor tick on an empty instance: every batch file becomes a partition and an ingest run request.
        tick = sensor_tick(sensor, instance, defs, settings)
        assert [r.partition_key for r in tick.run_requests] == batches
        assert [r.run_key.split("@")[0] for r in tick.run_requests] == batches
        assert all(r.job_name in (None, "ingest_job") for r in tick.run_requests)
        [add] = tick.dynamic_partitions_requests
        assert isinstance(add, dg.AddDynamicPartitionsRequest)
        assert (add.partitions_def_name, list(add.partition_keys)) == (catalogue_batches.name, batches)
        # Apply the request as the sensor daemon would; the next tick finds nothing new.
        instance.add_dynamic_partitions(add.partitions_def_name, add.partition_keys)
        again = sensor_tick(sensor, instance, defs, settings, tick.cursor)
        assert not again.run_requests and not again.dynamic_partitions_requests
        # A replaced file is re-ingested under its partition; the run key names the new file version.
        replaced = incoming / "batch_001.parquet"
        pd.read_parquet(replaced).iloc[:-1].to_parquet(replaced)
        changed = sensor_tick(sensor, instance, defs, settings, again.cursor)
        [rerun] = changed.run_requests
        assert rerun.partition_key == "batch_001" and rerun.run_key not in {
            r.run_key for r in tick.run_requests
        }
        assert not changed.dynamic_partitions_requests
        assert not sensor_tick(sensor, instance, defs, settings, changed.cursor).run_requests

        # Schedule tick before any ingest: a skip with its reason.
        before = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time)
        )
        assert not before.run_requests
        assert "no catalogue batch has been ingested" in before.skip_message

        # The partitioned materialization, exactly as the sensor asked for it.
        request = tick.run_requests[0]
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=dict(request.tags)
        )
        assert result.success

        after = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time)
        )
        assert after.skip_message is None
        [nightly] = after.run_requests
        assert nightly.run_key == "nightly-2026-03-01"
    finally:
        instance.dispose()

    # Everything above is in PostgreSQL: read it back through a fresh instance and with plain SQL.
    source_rows = len(pd.read_parquet(small_sample / "batches" / "batch_000.parquet"))
    reader = postgres_instance(tmp_path / "home")
    try:
        [run] = reader.get_runs()
        assert run.run_id == result.run_id
        assert run.job_name == "ingest_job"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == "batch_000"
        event = reader.get_latest_materialization_event(dg.AssetKey("raw_products"))
        assert event is not None and event.run_id == run.run_id
        materialization = event.asset_materialization
        assert materialization.partition == "batch_000"
        accepted = materialization.metadata["rows_accepted"].value
        assert accepted > 0 and accepted + materialization.metadata["rows_rejected"].value == source_rows
        for key in ("cleaned_text", "image_tensors"):
            assert reader.get_latest_materialization_event(dg.AssetKey(key)).run_id == run.run_id
        assert sorted(reader.get_dynamic_partitions(catalogue_batches.name)) == batches
    finally:
        reader.dispose()

    assert sql(postgres_server, db, "SELECT run_id, pipeline_name, status, partition FROM runs") == [
        (run.run_id, "ingest_job", "SUCCESS", "batch_000")
    ]
    counts = dict(
        sql(
            postgres_server,
            db,
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s GROUP BY dagster_event_type",
            run.run_id,
        )
    )
    event_type = dg.DagsterEventType
    assert counts[event_type.ASSET_MATERIALIZATION.value] == 3  # raw_products, cleaned_text, image_tensors
    assert counts[event_type.STEP_SUCCESS.value] == 3
    assert counts[event_type.RUN_SUCCESS.value] == 1  # stored under its legacy name PIPELINE_SUCCESS
    keys = sql(
        postgres_server,
        db,
        "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' "
        "ORDER BY asset_key",
        run.run_id,
    )
    assert [k for (k,) in keys] == ['["cleaned_text"]', '["image_tensors"]', '["raw_products"]']
    assert (
        sorted(p for (p,) in sql(postgres_server, db, 'SELECT "partition" FROM dynamic_partitions'))
        == batches
    )
