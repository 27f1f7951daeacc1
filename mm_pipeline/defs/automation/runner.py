"""Run the whole graph in order, in-process, against a persistent instance (``make demo``, tests)."""

from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from mm_pipeline.defs.partitions import catalogue_batches

STAGES = (("ingest_job", True), ("model_job", False), ("embeddings_job", True), ("evaluation_job", False))


@dataclass
class GraphRun:
    batches: list[str]
    failures: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures


def register_batches(instance: dg.DagsterInstance, batches: list[str]) -> None:
    known = set(instance.get_dynamic_partitions(catalogue_batches.name))
    new = [b for b in batches if b not in known]
    if new:
        instance.add_dynamic_partitions(catalogue_batches.name, new)


def materialize_graph(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    batches: list[str],
    log: Callable[[str], None] = print,
    stages: tuple[tuple[str, bool], ...] = STAGES,
) -> GraphRun:
    """Materialize every stage: partitioned stages once per batch, the others once. Stops at a failed stage."""
    register_batches(instance, batches)
    outcome = GraphRun(batches)
    for job_name, partitioned in stages:
        for key in batches if partitioned else [None]:
            label = f"{job_name}[{key}]" if key else job_name
            log(f"running {label} ...")
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, partition_key=key, raise_on_error=False
            )
            outcome.run_ids.append(result.run_id)
            if not result.success:
                outcome.failures.append(label)
        if outcome.failures:
            break
    return outcome
