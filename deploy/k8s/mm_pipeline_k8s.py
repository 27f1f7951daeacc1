"""Kubernetes code location: mm_pipeline's definitions run with the k8s_job_executor (one pod per step).

Served by ``dagster api grpc -m mm_pipeline_k8s`` in the image built by deploy/k8s/Dockerfile; the
executor configuration (CPU pool for every step, GPU pool for the model steps) is deploy/k8s/executor.yaml,
copied next to this module.
"""

from pathlib import Path

import dagster as dg
import yaml
from dagster_k8s import k8s_job_executor

from mm_pipeline.definitions import build_defs

EXECUTOR_CONFIG = yaml.safe_load((Path(__file__).with_name("executor.yaml")).read_text())

GPU_K8S_CONFIG = EXECUTOR_CONFIG["config"]["per_step_k8s_config"]["fine_tuned_model"]
"""The GPU pod settings, usable as ``op_tags={"dagster-k8s/config": GPU_K8S_CONFIG}`` on an asset."""


@dg.definitions
def defs() -> dg.Definitions:
    """mm_pipeline's definitions (settings from the pod's ``MM_*`` variables) with the k8s_job_executor."""
    return dg.Definitions.merge(
        build_defs(),
        dg.Definitions(
            executor=k8s_job_executor.configured(EXECUTOR_CONFIG["config"], name="k8s_job_executor")
        ),
    )
