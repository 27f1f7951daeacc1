"""A pipeline wired to temporary folders and an ephemeral Dagster instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.automation.runner import register_batches
from mm_pipeline.defs.metrics.assets import MetricGates
from mm_pipeline.defs.resources import PipelineSettings

# floors a tiny untrained test model can meet: these tests check wiring, the gate test checks gating
PERMISSIVE_GATES = MetricGates(min_fused_f1={}, max_drop_vs_base=1.0)


@dataclass
class Pipeline:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    settings: PipelineSettings

    def run(self, job: str, partition: str | None = None) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, partition_key=partition, raise_on_error=False
        )

    def register(self) -> list[str]:
        batches = self.settings.batch_names()
        register_batches(self.instance, batches)
        return batches


def make_pipeline(
    tmp_path: Path, incoming: Path, images: Path, gates: MetricGates | None = None, **overrides
) -> Pipeline:
    settings = PipelineSettings(
        data_dir=str(tmp_path / "data"),
        incoming_dir=str(incoming),
        images_dir=str(images),
        workers=2,
        **overrides,
    )
    return Pipeline(build_defs(settings, gates), dg.DagsterInstance.ephemeral(), settings)


def tiny_model_pipeline(
    tmp_path: Path,
    incoming: Path,
    images: Path,
    ruclip_dir: Path,
    gates: MetricGates | None = None,
    **overrides,
) -> Pipeline:
    """A pipeline that starts from the tests' tiny ruCLIP folder and fine-tunes it for one epoch."""
    settings = {"train_epochs": 1, "train_batch_size": 32} | overrides
    return make_pipeline(tmp_path, incoming, images, gates, ruclip_dir=str(ruclip_dir), **settings)
