"""Gate verdicts as publishing reads them: passed, failed, missing, stale or outdated (no Dagster here).

A gate is one blocking check of one asset (one partition of it for per-batch checks). Publishing reads the
latest *evaluation* of every gate, the latest materialization of the asset it checks and the newest
materialization of that asset's inputs; only a gate that passed on the asset's latest materialization, made
after its inputs' latest ones, lets the new version out. Without the second condition a metric computed
before a batch was added, re-ingested or re-embedded vouched for vectors it never saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PASSED, FAILED, MISSING, STALE, OUTDATED = "passed", "failed", "missing", "stale", "outdated"
VERDICT = "verdict"  # the metadata entry in which a gate's check states its verdict in one line


@dataclass(frozen=True)
class Gate:
    """A blocking check of an asset that another asset depends on; ``per_partition``: evaluated once per
    partition of the asset; ``inputs``: the asset's own dependencies, each with whether it is partitioned.
    Kept as ``as_dict`` in the dependent asset's definition metadata."""

    asset: str
    check: str
    per_partition: bool
    inputs: tuple[tuple[str, bool], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Gate:
        inputs = tuple((name, bool(partitioned)) for name, partitioned in values.get("inputs", ()))
        return cls(values["asset"], values["check"], values["per_partition"], inputs)

    def input_partitions(
        self, partition: str | None, partitions: Sequence[str]
    ) -> list[tuple[str, str | None]]:
        """The (asset, partition) materializations the gated asset at ``partition`` is made from: a partitioned
        input at the same partition (every asset here is partitioned by catalogue batch or not at all), at each
        of ``partitions`` when the gated asset is unpartitioned; an unpartitioned input whole."""
        return [
            (name, part)
            for name, partitioned in self.inputs
            for part in (([partition] if partition else partitions) if partitioned else [None])
        ]


@dataclass(frozen=True)
class Materialization:
    storage_id: int
    run_id: str
    timestamp: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MetricRecord:
    """A metric asset's latest materialization with the metadata values the publish manifest keeps of it."""

    asset: str
    materialization: Materialization
    values: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The manifest's ``metrics`` entry: asset, storage id, run, time, then ``values``."""
        return {"asset": self.asset, **self.materialization.as_dict(), **self.values}


@dataclass(frozen=True)
class GateReading:
    """What the instance says about one gate: its latest evaluation and the asset's latest materialization."""

    check: str
    asset: str
    partition: str | None = None
    latest: Materialization | None = None  # the asset's (partition's) latest materialization
    passed: bool | None = None  # None: never evaluated
    judged: Materialization | None = None  # the materialization that evaluation judged, when recorded
    evaluation_run_id: str | None = None
    evaluated_at: float | None = None
    verdict: str = ""
    # the newest materialization among the asset's inputs (partition-mapped), and which input made it
    newest_input: Materialization | None = None
    newest_input_name: str = ""

    @property
    def target(self) -> str:
        """The asset the gate checks, with its partition: ``embeddings[batch_001]``, ``metric_category``."""
        return f"{self.asset}[{self.partition}]" if self.partition else self.asset

    @property
    def name(self) -> str:
        return f"{self.check} ({self.target})"

    @property
    def is_stale(self) -> bool:
        """The evaluation judged an older materialization than the asset's latest one."""
        if self.passed is None or self.latest is None:
            return False
        if self.latest.run_id == self.evaluation_run_id:
            return False  # materialized and checked in one run
        if self.judged is None:  # evaluation without a recorded target: fall back to time, as Dagster does
            return self.latest.timestamp >= (self.evaluated_at or 0.0)
        return self.judged.storage_id != self.latest.storage_id

    @property
    def is_outdated(self) -> bool:
        """An input of the asset was materialized after the asset's latest materialization (event log storage
        ids, which grow with every event): what the gate judged was made from older data."""
        if self.latest is None or self.newest_input is None:
            return False
        return self.newest_input.storage_id > self.latest.storage_id

    @property
    def status(self) -> str:
        if self.passed is None:
            return MISSING
        if self.is_outdated:
            return OUTDATED
        if self.is_stale:
            return STALE
        return PASSED if self.passed else FAILED

    def explain(self) -> str:
        status = self.status
        if status == MISSING:
            return f"{self.name}: missing (never evaluated; run the check)"
        if status == OUTDATED:
            return (
                f"{self.name}: outdated ({self.target} was materialized before {self.newest_input_name}, which "
                f"run {self.newest_input.run_id[:8]} materialized after it; re-materialize {self.target} with its "
                "checks)"
            )
        if status == STALE:
            judged = (
                f"materialization {self.judged.storage_id}" if self.judged else "an earlier materialization"
            )
            latest = self.latest
            return (
                f"{self.name}: stale (judged {judged}, the latest is {latest.storage_id} of run "
                f"{latest.run_id[:8]}; re-run the check)"
            )
        return f"{self.name}: {status}" + (f" ({self.verdict})" if self.verdict else "")

    def record(self) -> dict:
        """The manifest entry: the gate, its verdict and the materialization it judged."""
        judged = self.judged or (self.latest if self.status == PASSED else None)
        return {
            "check": self.check,
            "asset": self.asset,
            "partition": self.partition,
            "status": self.status,
            VERDICT: self.verdict,
            "evaluation_run_id": self.evaluation_run_id,
            "judged_materialization": None if judged is None else judged.as_dict(),
        }


def blocking_gates(readings: Sequence[GateReading]) -> list[GateReading]:
    """The gates that stop publishing: every one that is not ``passed``."""
    return [r for r in readings if r.status != PASSED]


def refusal(readings: Sequence[GateReading]) -> str | None:
    """The message publishing fails with, naming each failed, missing or stale gate; None when all passed."""
    blocking = blocking_gates(readings)
    if not readings:
        return "not publishing: no gates were found to judge the vectors by"
    if not blocking:
        return None
    lines = "\n".join(f"- {r.explain()}" for r in blocking)
    names = ", ".join(r.name for r in blocking)
    return (
        f"not publishing: {len(blocking)} of {len(readings)} gates did not pass: {names}. The previous "
        f"published version stays in place.\n{lines}"
    )
