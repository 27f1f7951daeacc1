"""A pipeline wired to temporary folders and an ephemeral Dagster instance."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from mm_pipeline.definitions import build_defs
from mm_pipeline.defs.evaluation.assets import DEFAULT_FLOORS, MetricGates
from mm_pipeline.defs.in_process.runner import register_batches
from mm_pipeline.defs.resources import PipelineSettings

# floors a tiny untrained test model can meet: these tests check wiring, the gate test checks gating
PERMISSIVE_GATES = MetricGates(min_fused_f1=dict.fromkeys(DEFAULT_FLOORS, 0.0), max_drop_vs_base=1.0)


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


@dataclass(frozen=True)
class GraphSnapshot:
    """A whole graph materialized once (ingest, model, embeddings with their checks, evaluation, a first
    published version) on a persistent instance: tests copy it and change only what they exercise."""

    root: Path
    options: dict  # PipelineSettings fields other than data_dir

    @property
    def settings(self) -> PipelineSettings:
        return PipelineSettings(data_dir=str(self.root / "data"), **self.options)

    def copy(self, tmp_path: Path, gates: MetricGates | None = None) -> Pipeline:
        shutil.copytree(self.root / "data", tmp_path / "data", symlinks=True)
        shutil.copytree(self.root / "dagster_home", tmp_path / "dagster_home")
        settings = PipelineSettings(data_dir=str(tmp_path / "data"), **self.options)
        instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
        return Pipeline(build_defs(settings, gates or PERMISSIVE_GATES), instance, settings)


@pytest.fixture(scope="session")
def graph_snapshot(tmp_path_factory, small_sample, tiny_ruclip_dir) -> GraphSnapshot:
    root = tmp_path_factory.mktemp("graph_snapshot")
    options = {
        "incoming_dir": str(small_sample / "batches"),
        "images_dir": str(small_sample / "images"),
        "workers": 2,
        "ruclip_dir": str(tiny_ruclip_dir),
        "train_epochs": 1,
        "train_batch_size": 32,
        "eval_fraction": 0.5,
    }
    settings = PipelineSettings(data_dir=str(root / "data"), **options)
    (root / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(root / "dagster_home"))
    pipeline = Pipeline(build_defs(settings, PERMISSIVE_GATES), instance, settings)
    batches = pipeline.register()
    for batch in batches:
        assert pipeline.run("ingest_job", batch).success
    assert pipeline.run("model_job").success
    for batch in batches:
        assert pipeline.run("embeddings_job", batch).success
    assert pipeline.run("evaluation_job").success
    assert settings.layout.published_embeddings.exists()
    instance.dispose()
    return GraphSnapshot(root, options)
