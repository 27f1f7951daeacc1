"""The code location: everything under ``mm_pipeline/defs`` plus shared resources, built by a function."""

from pathlib import Path

import dagster as dg

from mm_pipeline.defs.automation.gating import with_gated_automation
from mm_pipeline.defs.evaluation.assets import MetricGates
from mm_pipeline.defs.evaluation.duplicates import IndexSettings
from mm_pipeline.defs.resources import PipelineSettings, build_wandb_resource


def build_defs(settings: PipelineSettings | None = None, gates: MetricGates | None = None) -> dg.Definitions:
    """All definitions, with ``settings`` (default: from ``MM_*`` environment variables) and metric gates.

    Every asset downstream of one with a blocking check is automated only once those checks passed
    (``with_gated_automation``).
    """
    defs = dg.Definitions.merge(
        dg.load_from_defs_folder(project_root=Path(__file__).parent.parent),
        dg.Definitions(
            resources={
                "settings": settings or PipelineSettings.from_env(),
                "gates": gates or MetricGates(),
                "index_settings": IndexSettings(),
                "wandb_resource": build_wandb_resource(),
            }
        ),
    )
    return with_gated_automation(defs)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location that ``workspace.yaml``, ``dagster api grpc -m mm_pipeline.definitions`` and ``dg``
    load: settings from the ``MM_*`` variables of the process that loads it, read when Dagster loads the
    location (not when this module is imported). The CLI and tests call :func:`build_defs` with their own."""
    return build_defs()
