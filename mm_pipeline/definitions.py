"""The code location: everything under ``mm_pipeline/defs`` plus shared resources."""

from pathlib import Path

import dagster as dg

from mm_pipeline.defs.resources import PipelineSettings, build_wandb_resource

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(project_root=Path(__file__).parent.parent),
    dg.Definitions(resources={"settings": PipelineSettings.from_env(), "wandb_resource": build_wandb_resource()}),
)
