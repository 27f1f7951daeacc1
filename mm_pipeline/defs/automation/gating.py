"""Gates on every path: automation waits for passed blocking checks, and publishing reads them itself.

Two guards, because a blocking check only stops downstream steps *inside the run that evaluated it*:

- :func:`gated` / :func:`with_gated_automation`: the automation condition of every asset that depends on an
  asset with a blocking check also requires that the latest blocking checks of its dependencies passed, in
  every partition. Dagster's ``all_deps_blocking_checks_passed()`` alone maps a partitioned dependency onto
  an unpartitioned child as "any partition passed" (checked on 1.13.27: one failed batch out of two still
  let the child through), so the condition adds "no partition of any dependency has a blocking check that
  did not pass".
- :func:`read_gates`: the latest evaluation of each gate, the latest materialization of the asset it judges
  and the newest of that asset's inputs, read from the instance, for ``published_embeddings`` to refuse on
  (see ``mm_pipeline.publish.gates``).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

# not exported at the top level of dagster 1.13.27
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._record import replace

from mm_pipeline.publish.gates import VERDICT, Gate, GateReading, Materialization, MetricRecord

GATES_PASSED_LABEL = "blocking checks of every dependency passed"


def gates_passed() -> dg.AutomationCondition:
    """True when every blocking check of every dependency passed on its latest materialization (or is
    requested on this tick), for every partition of a partitioned dependency."""
    not_passed = ~(dg.AutomationCondition.check_passed() | dg.AutomationCondition.will_be_requested())
    any_blocked = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.any_checks_match(not_passed, blocking_only=True)
    ).with_label("a blocking check of some dependency partition did not pass")
    return (dg.AutomationCondition.all_deps_blocking_checks_passed() & ~any_blocked).with_label(
        GATES_PASSED_LABEL
    )


def gated(condition: dg.AutomationCondition) -> dg.AutomationCondition:
    return condition & gates_passed()


def is_gated(condition: dg.AutomationCondition | None) -> bool:
    """Whether ``condition`` already contains :func:`gates_passed`."""
    if condition is None:
        return False
    if condition.get_label() == GATES_PASSED_LABEL:
        return True
    return any(is_gated(child) for child in condition.children)


GATES_METADATA_KEY = "gates_of_dependencies"


def dependency_gates(graph, key: dg.AssetKey) -> list[Gate]:
    """The blocking checks of ``key``'s dependencies."""

    def inputs(asset: dg.AssetKey) -> tuple[tuple[str, bool], ...]:
        parents = sorted(graph.get(asset).parent_keys, key=lambda k: k.to_user_string())
        return tuple((p.to_user_string(), graph.get(p).partitions_def is not None) for p in parents)

    return [
        Gate(
            parent.to_user_string(),
            check_key.name,
            graph.get(check_key).partitions_def is not None,
            inputs(parent),
        )
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string())
        for check_key in sorted(graph.get(parent).check_keys, key=lambda k: k.name)
        if graph.get(check_key).blocking
    ]


def assets_downstream_of_gates(defs: dg.Definitions) -> dict[dg.AssetKey, list[Gate]]:
    """Assets with an automation condition and at least one dependency that has a blocking check, with
    those checks (:func:`dependency_gates`)."""
    graph = defs.resolve_asset_graph()
    gates = {key: dependency_gates(graph, key) for key in graph.get_all_asset_keys()}
    return {
        key: found
        for key, found in gates.items()
        if found and graph.get(key).automation_condition is not None
    }


def with_gated_automation(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with :func:`gates_passed` added to the condition of every asset downstream of a gated one, and
    the gates it depends on in that asset's definition metadata (``gates_of_dependencies``, shown in the UI and
    read by ``published_embeddings``: the run's own job only knows the checks it executes)."""
    targets = assets_downstream_of_gates(defs)

    def add_gate(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in targets:
            return spec
        condition = spec.automation_condition
        return spec.replace_attributes(
            automation_condition=condition if is_gated(condition) else gated(condition),
            metadata={
                **spec.metadata,
                GATES_METADATA_KEY: dg.MetadataValue.json([gate.as_dict() for gate in targets[spec.key]]),
            },
        )

    # one object per asset first: a module that imports another's asset makes the defs folder list it twice,
    # and mapping would turn the two references into two different definitions of one key
    unique = list({id(a): a for a in defs.assets or []}.values())
    mappable = [a for a in unique if isinstance(a, dg.AssetsDefinition | dg.AssetSpec)]
    others = [a for a in unique if not isinstance(a, dg.AssetsDefinition | dg.AssetSpec)]
    return replace(defs, assets=[*dg.map_asset_specs(add_gate, mappable), *others])


def gates_of(assets_def: dg.AssetsDefinition, key: dg.AssetKey) -> list[Gate]:
    """The gates :func:`with_gated_automation` recorded on ``key``; empty when it was built without them."""
    value = assets_def.specs_by_key[key].metadata.get(GATES_METADATA_KEY)
    if value is None:
        return []
    return [Gate.from_dict(g) for g in (value.value if isinstance(value, dg.MetadataValue) else value)]


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None
) -> dg.EventLogRecord | None:
    """The record of ``key``'s latest materialization (at ``partition``, when given); None when there is none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    return records[0] if records else None


def _materialization(record) -> Materialization | None:
    """The storage id, run and time of a materialization record or a check's target (None stays None)."""
    return None if record is None else Materialization(record.storage_id, record.run_id, record.timestamp)


def read_gate(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    partition: str | None,
    inputs: Sequence[tuple[dg.AssetKey, str | None]],
    latest_of,
) -> GateReading:
    """The latest evaluation (passed or failed) of one gate, the latest materialization it should judge and
    the newest materialization of ``inputs`` (:meth:`~mm_pipeline.publish.gates.Gate.input_partitions`).
    ``latest_of(key, partition)`` reads a latest materialization record (:func:`read_gates` passes a cached
    :func:`latest_materialization`)."""
    latest = _materialization(latest_of(check_key.asset_key, partition))
    made = [(record, key, part) for key, part in inputs if (record := latest_of(key, part)) is not None]
    newest = max(made, key=lambda item: item[0].storage_id, default=None)
    newest_input = None if newest is None else _materialization(newest[0])
    newest_name = (
        "" if newest is None else newest[1].to_user_string() + (f"[{newest[2]}]" if newest[2] else "")
    )
    records = instance.event_log_storage.get_asset_check_execution_history(
        check_key,
        limit=1,
        status={AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED},
        partition_filter=PartitionKeyFilter(key=partition),
    )
    base = GateReading(
        check_key.name,
        check_key.asset_key.to_user_string(),
        partition,
        latest,
        newest_input=newest_input,
        newest_input_name=newest_name,
    )
    if not records or records[0].evaluation is None:
        return base
    record = records[0]
    evaluation = record.evaluation
    verdict = evaluation.metadata.get(VERDICT)
    return GateReading(
        check=base.check,
        asset=base.asset,
        partition=partition,
        latest=latest,
        passed=evaluation.passed,
        judged=_materialization(evaluation.target_materialization_data),
        evaluation_run_id=record.run_id,
        evaluated_at=record.create_timestamp,
        verdict=str(verdict.value) if verdict is not None else (evaluation.description or ""),
        newest_input=newest_input,
        newest_input_name=newest_name,
    )


def read_gates(
    instance: dg.DagsterInstance, gates: Sequence[Gate], partitions: Sequence[str]
) -> list[GateReading]:
    """Every gate in ``gates`` (:func:`dependency_gates`); a per-partition one once per partition in
    ``partitions``, an unpartitioned one judged against its inputs in those partitions."""
    cache: dict[tuple[dg.AssetKey, str | None], dg.EventLogRecord | None] = {}

    def latest_of(key: dg.AssetKey, partition: str | None) -> dg.EventLogRecord | None:
        if (key, partition) not in cache:
            cache[key, partition] = latest_materialization(instance, key, partition)
        return cache[key, partition]

    readings = []
    for gate in gates:
        check_key = dg.AssetCheckKey(dg.AssetKey.from_user_string(gate.asset), gate.check)
        for partition in partitions if gate.per_partition else [None]:
            inputs = [
                (dg.AssetKey.from_user_string(name), part)
                for name, part in gate.input_partitions(partition, partitions)
            ]
            readings.append(read_gate(instance, check_key, partition, inputs, latest_of))
    return readings


def metric_record(
    instance: dg.DagsterInstance, key: dg.AssetKey, fields: Sequence[str] = ()
) -> MetricRecord | None:
    """The latest materialization of ``key`` with the values of the metadata entries ``fields`` it has."""
    record = latest_materialization(instance, key, None)
    if record is None:
        return None
    metadata = record.asset_materialization.metadata
    return MetricRecord(
        key.to_user_string(),
        _materialization(record),
        {f: metadata[f].value for f in fields if f in metadata},
    )
