"""The asset graph against a committed snapshot (graph_snapshot.json), so every change to the graph is a diff.

Covered: asset keys, groups, deps, kinds, partitions, automation conditions, asset checks (blocking flag and
automation condition), job selections, schedules and sensors. After an intended change, regenerate it and
commit the diff:

    UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest mm_pipeline_tests/defs/test_graph_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.resources import PipelineSettings

SNAPSHOT = Path(__file__).with_name("graph_snapshot.json")
REGENERATE = "UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest mm_pipeline_tests/defs/test_graph_snapshot.py"
# Dagster's own named conditions, shown by name; conditions this project labels are spelled out once
DAGSTER_LABELS = {
    dg.AutomationCondition.eager().get_label(),
    dg.AutomationCondition.on_missing().get_label(),
    dg.AutomationCondition.all_deps_blocking_checks_passed().get_label(),
}
OPERATORS = {"AND": " & ", "OR": " | "}


def operands(condition: dg.AutomationCondition) -> list[dg.AutomationCondition]:
    # the check operators keep their operand out of ``children`` (dagster 1.13)
    operand = getattr(condition, "operand", None)
    return list(condition.children) or ([operand] if isinstance(operand, dg.AutomationCondition) else [])


def spell(condition: dg.AutomationCondition) -> str:
    """A condition's tree, each labelled sub-condition written as its label."""
    parts = [label_or_spell(child) for child in operands(condition)]
    if condition.name in OPERATORS:
        return "(" + OPERATORS[condition.name].join(parts) + ")"
    if condition.name == "NOT":
        return f"~{parts[0]}"
    return f"{condition.name}({', '.join(parts)})" if parts else condition.name


def label_or_spell(condition: dg.AutomationCondition) -> str:
    label = condition.get_label()
    return label if label else spell(condition)


def project_labels(condition: dg.AutomationCondition | None, found: dict[str, str]) -> None:
    """Collect ``label -> its tree`` for every labelled sub-condition that is not one of Dagster's own."""
    if condition is None:
        return
    label = condition.get_label()
    if label and label in DAGSTER_LABELS:
        return
    if label:
        found[label] = spell(condition)
    for child in operands(condition):
        project_labels(child, found)


def condition_text(condition: dg.AutomationCondition | None) -> str | None:
    return None if condition is None else label_or_spell(condition)


def partitions_name(partitions_def) -> str | None:
    return None if partitions_def is None else getattr(partitions_def, "name", None) or str(partitions_def)


def graph_snapshot(defs: dg.Definitions) -> dict:
    """Everything the snapshot pins, sorted so the file only changes when the graph does."""
    graph = defs.resolve_asset_graph()
    conditions: dict[str, str] = {}
    checks: dict[str, dict] = {}
    for key in graph.asset_check_keys:
        node = graph.get(key)
        project_labels(node.automation_condition, conditions)
        checks.setdefault(key.asset_key.to_user_string(), {})[key.name] = {
            "blocking": node.blocking,
            "automation_condition": condition_text(node.automation_condition),
            "partitions": partitions_name(node.partitions_def),
        }
    assets = {}
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        project_labels(spec.automation_condition, conditions)
        assets[name] = {
            "group": spec.group_name,
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
            "kinds": sorted(spec.kinds),
            "partitions": partitions_name(spec.partitions_def),
            "automation_condition": condition_text(spec.automation_condition),
            "checks": checks.pop(name, {}),
        }
    assert not checks, f"checks of assets outside the graph: {sorted(checks)}"
    jobs = {
        job.name: {
            "assets": sorted(k.to_user_string() for k in job.selection.resolve(graph)),
            "checks": sorted(
                f"{k.asset_key.to_user_string()}:{k.name}" for k in job.selection.resolve_checks(graph)
            ),
            "partitions": partitions_name(job.partitions_def),
        }
        for job in defs.jobs or []
    }
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "job": s.job_name,
            "default_status": s.default_status.value,
        }
        for s in defs.schedules or []
    }
    sensors = {
        s.name: {
            "type": s.sensor_type.value,
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "default_status": s.default_status.value,
            "jobs": sorted(t.job_name for t in s.targets) if s.has_jobs else [],
            "asset_selection": None if s.asset_selection is None else str(s.asset_selection),
        }
        for s in defs.sensors or []
    }
    return {
        "assets": assets,
        "conditions": conditions,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
    }


def render(snapshot: dict) -> str:
    return json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def assert_matches(current: str, snapshot: Path) -> None:
    """Fail with a unified diff of the committed snapshot against ``current`` and how to regenerate it."""
    committed = snapshot.read_text() if snapshot.exists() else ""
    if current != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile=f"{snapshot.name} (committed)",
                tofile=f"{snapshot.name} (the graph now)",
            )
        )
        raise AssertionError(
            f"the asset graph changed; if intended, regenerate and commit the diff:\n    {REGENERATE}\n\n{diff}"
        )


def test_asset_graph_matches_the_committed_snapshot(tmp_path):
    current = render(graph_snapshot(build_defs(PipelineSettings(data_dir=str(tmp_path)))))
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(current)
    assert_matches(current, SNAPSHOT)


def test_a_mismatch_prints_the_changed_lines_and_how_to_regenerate(tmp_path):
    current = SNAPSHOT.read_text()
    stale = tmp_path / SNAPSHOT.name
    stale.write_text(current.replace('"blocking": true', '"blocking": false', 1))
    with pytest.raises(AssertionError) as failure:
        assert_matches(current, stale)
    message = str(failure.value)
    assert REGENERATE in message
    assert '-          "blocking": false,' in message and '+          "blocking": true,' in message
    assert_matches(current, SNAPSHOT)  # no diff: no failure


def test_the_snapshot_is_deterministic_and_sees_a_changed_graph(tmp_path):
    first = render(graph_snapshot(build_defs(PipelineSettings(data_dir=str(tmp_path)))))
    assert first == render(graph_snapshot(build_defs(PipelineSettings(data_dir=str(tmp_path / "other")))))
    snapshot = json.loads(first)
    assert snapshot["assets"]["published_embeddings"]["automation_condition"] == (
        "(eager & blocking checks of every dependency passed)"
    )
    assert snapshot["assets"]["embeddings"]["checks"]["batch_vectors"]["blocking"] is True

    # one more asset with a non-blocking check: the snapshot shows it, its check and the job that now runs it
    @dg.asset(deps=["embeddings"], group_name="evaluation", kinds={"parquet"})
    def new_asset() -> None: ...

    @dg.asset_check(asset=new_asset, blocking=False)
    def new_check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    extra = dg.Definitions.merge(
        build_defs(PipelineSettings(data_dir=str(tmp_path))),
        dg.Definitions(assets=[new_asset], asset_checks=[new_check]),
    )
    changed = graph_snapshot(extra)
    assert changed["assets"]["new_asset"]["deps"] == ["embeddings"]
    assert changed["assets"]["new_asset"]["checks"]["new_check"]["blocking"] is False
    assert "new_asset" in changed["jobs"]["evaluation_job"]["assets"]
    assert "new_asset:new_check" in changed["jobs"]["evaluation_job"]["checks"]
    assert render(changed) != first
