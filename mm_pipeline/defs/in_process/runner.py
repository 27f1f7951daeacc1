"""Run the whole graph in order, in-process, against a persistent instance (``make demo``, ``mm-pipeline run``,
tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from mm_pipeline.defs.in_process.orphans import process_tags, release_orphaned_runs
from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.publish.gates import VERDICT

STAGES = (("ingest_job", True), ("model_job", False), ("embeddings_job", True), ("evaluation_job", False))
# what Dagster's console logger prints during a graph run: the assets' progress, warnings and errors; its DEBUG
# events (step starts, outputs, handled inputs: half the lines of a run) stay in the instance's event log
CONSOLE_LOG_LEVEL = "INFO"


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check evaluated during a graph run: the checked asset, the check's name, whether it
    passed and its verdict (the one line a gate states in its ``VERDICT`` metadata; empty for a check
    without one)."""

    asset: str
    check: str
    passed: bool
    verdict: str = ""

    @classmethod
    def of(cls, evaluation: dg.AssetCheckEvaluation) -> CheckOutcome:
        verdict = evaluation.metadata.get(VERDICT, dg.MetadataValue.text("")).value
        return cls(evaluation.asset_key.to_user_string(), evaluation.check_name, evaluation.passed, verdict)

    @property
    def step_key(self) -> str:
        """The key of the execution step that ran this check."""
        return f"{self.asset}_{self.check}"


@dataclass(frozen=True)
class GraphRun:
    """What :func:`materialize_graph` did: the batches, the stages that failed, the Dagster run ids and every
    asset check's outcome, in order."""

    batches: tuple[str, ...]
    failures: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    checks: tuple[CheckOutcome, ...] = ()

    @property
    def failed_gates(self) -> list[str]:
        return [c.check for c in self.checks if not c.passed]

    @property
    def success(self) -> bool:
        return not self.failures


def register_batches(instance: dg.DagsterInstance, batches: list[str]) -> list[str]:
    """Make the registered partitions exactly ``batches`` (the files present): add the new ones and retire the
    others, as the ``new_batch_files`` sensor does; returns one line per retired batch."""
    known = set(instance.get_dynamic_partitions(catalogue_batches.name))
    new = [b for b in batches if b not in known]
    if new:
        instance.add_dynamic_partitions(catalogue_batches.name, new)
    retired = sorted(known - set(batches))
    for batch in retired:
        instance.delete_dynamic_partition(catalogue_batches.name, batch)
    return [f"{batch}: file gone; partition retired, its products are no longer served" for batch in retired]


def failure_reason(event: dg.DagsterEvent) -> str:
    """The first line of a step failure's error, without the module path of its class (``Failure: ...``)."""
    error = event.step_failure_data.error
    if error is None:
        return "failed"
    first_line = (
        error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name or "failed"
    )
    head, separator, rest = first_line.partition(": ")
    return f"{head.rsplit('.', 1)[-1]}{separator}{rest}"


def materialize_graph(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    batches: list[str],
    log: Callable[[str], None] = print,
    stages: tuple[tuple[str, bool], ...] = STAGES,
) -> GraphRun:
    """Materialize every stage: partitioned stages once per batch, the others once. Stops at a failed stage.

    A blocking gate that fails is not a failed stage: it is the pipeline refusing to publish, recorded in
    ``checks`` with its verdict.
    """
    for line in release_orphaned_runs(instance):  # a killed earlier run must not hold heavy_compute forever
        log(line)
    for line in register_batches(instance, batches):
        log(line)
    failures, run_ids, outcomes = [], [], []
    total = sum(len(batches) if partitioned else 1 for _, partitioned in stages)
    step = 0
    for job_name, partitioned in stages:
        for key in batches if partitioned else [None]:
            label = f"{job_name}[{key}]" if key else job_name
            step += 1
            log(f"[{step}/{total}] running {label} ...")
            started = time.perf_counter()
            result = defs.resolve_job_def(job_name).execute_in_process(
                run_config={"loggers": {"console": {"config": {"log_level": CONSOLE_LOG_LEVEL}}}},
                instance=instance,
                partition_key=key,
                raise_on_error=False,
                tags=process_tags(),
            )
            elapsed = time.perf_counter() - started
            run_ids.append(result.run_id)
            checks = [CheckOutcome.of(c) for c in result.get_asset_check_evaluations()]
            outcomes += checks
            failed_checks = {c.step_key for c in checks if not c.passed}
            failed = [e for e in result.all_events if e.is_step_failure and e.step_key not in failed_checks]
            if result.success or not failed:
                log(f"[{step}/{total}] {label} finished in {elapsed:.0f} s")
                continue
            failures.append(label)
            reasons = "; ".join(f"{e.step_key}: {failure_reason(e)}" for e in failed)
            log(f"[{step}/{total}] {label} FAILED in {elapsed:.0f} s: {reasons}")
        if failures:
            break
    return GraphRun(tuple(batches), tuple(failures), tuple(run_ids), tuple(outcomes))
