"""Runs executed in-process (``make demo``, ``mm-pipeline run``) whose process was killed: no code server saw
them die, so they stay STARTED and keep their ``heavy_compute`` slot, and the daemon's run monitoring (which
frees the slots of runs that *ended*) never frees it. The runner tags its runs with host and pid, and before
running anything marks failed the runs of this host whose process is gone and frees their slots."""

import os
import socket

import dagster as dg

HOST_TAG = "mm_pipeline/host"
PID_TAG = "mm_pipeline/pid"
UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def process_tags() -> dict[str, str]:
    """Tags of a run executed in this process, so a later process can tell whether it is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def release_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every unfinished run tagged by :func:`process_tags` on this host whose process is gone, and
    free the pool slots of those runs and of any other run that ended still holding some. One line per run."""
    host = socket.gethostname()
    storage = instance.event_log_storage
    released = []
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: host}))
    for record in records:
        run = record.dagster_run
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid <= 0 or pid == os.getpid() or _alive(pid):
            continue
        instance.report_run_failed(run, f"process {pid} on {host} that executed this run is gone (killed?)")
        released.append(f"run {run.run_id} ({run.job_name}): process {pid} is gone, marked failed")
    if storage.supports_global_concurrency_limits:
        holding = storage.get_concurrency_run_ids()
        ended = instance.get_run_records(filters=dg.RunsFilter(run_ids=list(holding))) if holding else []
        for record in ended:
            if record.dagster_run.is_finished:
                storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
                released.append(f"run {record.dagster_run.run_id}: freed the pool slots it still held")
    return released
