"""A metric's ``summary.json`` as one typed record (no numpy, no Dagster here).

Written by :func:`mm_pipeline.evaluation.tasks.save_metric` for a label task
(:meth:`mm_pipeline.evaluation.tasks.TaskResult.summary`) and for the duplicates metric
(:func:`mm_pipeline.evaluation.duplicate_pairs.duplicates_metric`); read through :func:`read_summary` by the
metric's gate (:func:`mm_pipeline.evaluation.tasks.judge`), the review pairs, the quality report and the demo
summary. The keys those readers use are fields; every other key of the file (the per-task numbers shown as
asset metadata) stays in ``details``. A field is ``None`` where the file has no such key: a task without
enough data has no scores, the duplicates metric has no ``reason``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mm_pipeline.layout import Layout

OK = "ok"
INSUFFICIENT = "insufficient data"


@dataclass(frozen=True)
class MetricSummary:
    task: str
    status: str = OK  # OK or INSUFFICIENT
    reason: str | None = None  # why the task could not be scored ("" when it was)
    labelled: int | None = None  # eval products with a label
    fused_f1: float | None = None  # the fine-tuned fused vector's F1 (duplicates: pair F1)
    base_fused_f1: float | None = None
    fused_f1_se: float | None = None  # bootstrap standard errors on the eval split
    fused_f1_minus_base: float | None = None
    fused_f1_minus_base_se: float | None = None
    fused_minus_best_reference: float | None = None  # against the best reference that learns nothing
    fused_minus_best_reference_se: float | None = None
    ground_truth: str | None = None  # duplicates: what the pairs are scored against
    groups: int | None = None  # duplicates: groups (or re-listing pairs) of that ground truth
    threshold: float | None = None  # duplicates: the pair threshold chosen on half of the groups
    details: Mapping[str, Any] = field(default_factory=dict)  # every other key of the file
    # the file's keys in the order it was written, so ``as_dict`` gives the same file back
    order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MetricSummary:
        """The summary whose file content is ``values`` (a missing ``task`` reads as ``""``, a missing
        ``status`` as ``OK``)."""
        named = {f.name for f in dataclasses.fields(cls)} - {"details", "order"}
        fields = {k: v for k, v in values.items() if k in named}
        details = {k: v for k, v in values.items() if k not in named}
        return cls(**{"task": "", **fields}, details=details, order=tuple(values))

    @classmethod
    def load(cls, path: Path | str) -> MetricSummary:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def as_dict(self) -> dict[str, Any]:
        """The content of ``summary.json``: the keys of ``from_dict`` in their order, then any other field
        that is set and every other detail."""
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("details", "order")
            and (f.name in self.order or getattr(self, f.name) is not None)
        }
        values.update(self.details)
        return {**{k: values[k] for k in self.order if k in values}, **values}


def read_summary(layout: Layout, task: str) -> MetricSummary:
    """The summary the metric ``task`` last saved (``layout.metric_summary(task)``); ``FileNotFoundError``
    when it has none."""
    return MetricSummary.load(layout.metric_summary(task))
