"""Pool slots of dead runs are freed (issue 16, item 5): the instance files enable Dagster's run monitoring
with ``free_slots_after_run_end_seconds`` and the daemon's iteration really frees the ``heavy_compute`` slot
of a run that ended holding it; a run executed in-process by a killed ``make demo``/``mm-pipeline run``
(which nothing marks ended) is marked failed and its slot freed by the next runner."""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
import yaml
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
from dagster._core.test_utils import create_run_for_test, create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring import concurrency as slot_monitoring
from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration

from mm_pipeline.defs.resources import MODEL_POOL
from mm_pipeline_tests.conftest import REPO

DEPLOY = REPO / "deploy"
INSTANCE_FILES = ("dagster.local.yaml", "dagster.yaml")


@pytest.mark.parametrize("name", INSTANCE_FILES)
def test_instance_files_are_valid_and_free_slots_of_ended_runs(name):
    config, _ = dagster_instance_config(str(DEPLOY), name)  # raises on any key dagster does not know
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 120
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_helm_values_render_a_valid_run_monitoring_section():
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] is True
    monitoring = daemon["runMonitoring"]
    # the chart's configmap-instance.yaml renders these keys into dagster.yaml's run_monitoring section
    rendered = {
        "enabled": monitoring["enabled"],
        "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
    }
    result = dg._config.validate_config(
        dg.Shape(dict(dagster_instance_config_schema())), {"run_monitoring": rendered}
    )
    assert result.success, result.errors
    assert rendered["enabled"] is True and 0 < rendered["free_slots_after_run_end_seconds"] <= 120


def test_daemon_frees_the_slot_of_a_killed_run(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.local.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        delay = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
        storage = instance.event_log_storage
        assert storage.supports_global_concurrency_limits
        killed = create_run_for_test(instance, job_name="embeddings_job", status=dg.DagsterRunStatus.STARTED)
        waiting = create_run_for_test(instance, job_name="embeddings_job", status=dg.DagsterRunStatus.STARTED)
        # the step worker of the killed run claimed the pool's only slot, as the executor does, and was
        # SIGKILLed inside its step: the context never exits, so nothing gives the slot back
        killed_steps = InstanceConcurrencyContext(instance, killed)
        assert killed_steps.claim(MODEL_POOL, "embeddings")
        waiting_steps = InstanceConcurrencyContext(instance, waiting)
        assert not waiting_steps.claim(MODEL_POOL, "embeddings")
        # the code server notices the dead process and marks the run failed; nothing gives the slot back
        instance.report_run_failed(killed, "run worker killed")
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        assert storage.get_concurrency_info(MODEL_POOL).claimed_slots[0].run_id == killed.run_id

        with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as context:

            def run_iteration():
                list(execute_concurrency_slots_iteration(context, logging.getLogger("test")))

            run_iteration()  # right after the run ended: the slot is kept for the configured delay
            assert storage.get_concurrency_info(MODEL_POOL).claimed_slots[0].run_id == killed.run_id

            later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=delay + 5)
            monkeypatch.setattr(slot_monitoring, "get_current_datetime", lambda: later)
            run_iteration()
        assert InstanceConcurrencyContext(instance, waiting).claim(MODEL_POOL, "embeddings")
        [slot] = storage.get_concurrency_info(MODEL_POOL).claimed_slots
        assert slot.run_id == waiting.run_id


HOLD_SLOT = """
import sys, time
import dagster as dg
from mm_pipeline.defs.in_process.orphans import process_tags

@dg.asset(pool="heavy_compute")
def holds_the_slot() -> None:
    time.sleep(300)

with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    dg.materialize([holds_the_slot], instance=instance, tags=process_tags())
"""


def test_a_killed_in_process_run_gives_its_slot_to_the_next_run(tmp_path):
    """`make demo` / `mm-pipeline run` SIGKILLed inside embeddings: no code server marks that run failed, so
    the next runner does, and frees its slot, before it starts."""
    from mm_pipeline.defs.in_process.orphans import process_tags, release_orphaned_runs

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.local.yaml", home / "dagster.yaml")
    child = subprocess.Popen([sys.executable, "-c", HOLD_SLOT, str(home)], cwd=REPO)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            storage = instance.event_log_storage
            deadline = time.monotonic() + 120
            while not storage.get_concurrency_info(MODEL_POOL).claimed_slots:
                assert child.poll() is None and time.monotonic() < deadline, "the child never took the slot"
                time.sleep(0.5)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
            [slot] = storage.get_concurrency_info(MODEL_POOL).claimed_slots
            killed = instance.get_run_by_id(slot.run_id)
            assert killed.status == dg.DagsterRunStatus.STARTED  # nobody noticed
            alive = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags=process_tags())

            released = release_orphaned_runs(instance)

            assert any(killed.run_id in line and f"process {child.pid} is gone" in line for line in released)
            assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
            assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED  # still running
            assert not storage.get_concurrency_info(MODEL_POOL).claimed_slots

            @dg.asset(pool=MODEL_POOL)
            def next_heavy_step() -> int:
                return 1

            started = time.monotonic()
            assert dg.materialize([next_heavy_step], instance=instance).success
            assert time.monotonic() - started < 60  # did not wait for the dead run's slot
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
