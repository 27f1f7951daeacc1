"""The environment variables the pipeline reads: one table, the single source for the settings, the README's
"Configuration" table and every deployment file (compose, Dockerfile, the Docker run launcher, Helm values).

Runs re-load the code location in their own process (a container for the Docker run launcher, a pod for
Kubernetes), so a variable set for the code server only is not seen by the run that does the work: every
variable here must reach the run workers. ``deployment_sets`` marks the paths a deployment sets itself (they
must point at the shared data volume); the others are forwarded from the operator's environment, empty when
the operator left them unset: an empty value counts as unset (the default applies), because the Docker run
launcher refuses to start a run when a variable it forwards is absent from the launching process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class EnvVariable:
    name: str
    field: str | None  # the PipelineSettings field it sets; None: read by W&B tracking (mm_pipeline.tracking)
    deployment_sets: bool = False  # a deployment gives it a value (a path on the shared volume)
    secret: bool = False  # Helm passes it from a Kubernetes secret (envSecrets), not a literal value


ENVIRONMENT = (
    EnvVariable("MM_DATA_DIR", "data_dir", deployment_sets=True),
    EnvVariable("MM_INCOMING_DIR", "incoming_dir", deployment_sets=True),
    EnvVariable("MM_IMAGES_DIR", "images_dir", deployment_sets=True),
    EnvVariable("MM_IMAGE_SIZE", "image_size"),
    EnvVariable("MM_MAX_IMAGE_PIXELS", "max_image_pixels"),
    EnvVariable("MM_RUCLIP_DIR", "ruclip_dir"),
    EnvVariable("MM_RUCLIP_NAME", "ruclip_name"),
    EnvVariable("MM_WORKERS", "workers"),
    EnvVariable("MM_EVAL_FRACTION", "eval_fraction"),
    EnvVariable("MM_TRAIN_EPOCHS", "train_epochs"),
    EnvVariable("MM_TRAIN_BATCH_SIZE", "train_batch_size"),
    EnvVariable("MM_ONNX_VARIANT", "onnx_variant"),
    EnvVariable("MM_DEVICE", "device"),
    EnvVariable("WANDB_MODE", None),
    EnvVariable("WANDB_API_KEY", None, secret=True),
)

SETTINGS_VARIABLES = {v.field: v.name for v in ENVIRONMENT if v.field is not None}
"""PipelineSettings field → the ``MM_*`` variable that sets it."""

DEFAULT_WORKERS = os.cpu_count() or 2
"""``workers`` when ``MM_WORKERS`` is unset: one thread per CPU of the machine that loads the definitions."""


def read_positive_int(name: str, default: int, env: Mapping[str, str] = os.environ) -> int:
    """The variable ``name`` of ``env``, ``default`` when unset or empty. Raises ValueError naming the variable
    unless it is a positive integer."""
    value = env.get(name) or str(default)
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r} is not a positive integer")
    return int(value)


def read_workers(env: Mapping[str, str] = os.environ) -> int:
    """``MM_WORKERS``: threads for ONNX Runtime and image decoding, :data:`DEFAULT_WORKERS` when unset or empty.
    Raises ValueError naming the variable unless it is a positive integer."""
    return read_positive_int("MM_WORKERS", DEFAULT_WORKERS, env)
