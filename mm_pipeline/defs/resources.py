"""Resources shared by every area: pipeline settings (paths, sizes, model source) and W&B logging."""

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from dagster_wandb import wandb_resource

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.layout import Layout
from mm_pipeline.model.train import BatchFiles

# field → the environment variable that sets it when definitions load (README, "Configuration")
ENV_VARIABLES = {
    "data_dir": "MM_DATA_DIR",
    "incoming_dir": "MM_INCOMING_DIR",
    "images_dir": "MM_IMAGES_DIR",
    "image_size": "MM_IMAGE_SIZE",
    "max_image_pixels": "MM_MAX_IMAGE_PIXELS",
    "ruclip_dir": "MM_RUCLIP_DIR",
    "ruclip_name": "MM_RUCLIP_NAME",
    "workers": "MM_WORKERS",
    "eval_fraction": "MM_EVAL_FRACTION",
    "train_epochs": "MM_TRAIN_EPOCHS",
    "train_batch_size": "MM_TRAIN_BATCH_SIZE",
    "onnx_variant": "MM_ONNX_VARIANT",
}
WANDB_PLACEHOLDER_KEY = "0" * 40  # offline/disabled W&B still wants a key-shaped string; never used online


class PipelineSettings(dg.ConfigurableResource):
    """Where data lives and how big things are. Defaults come from ``MM_*`` environment variables."""

    data_dir: str = "data"
    incoming_dir: str = "data/sample/batches"
    images_dir: str = "data/sample/images"
    image_size: int = 96
    max_image_pixels: int = 40_000_000
    ruclip_dir: str = ""
    ruclip_name: str = ""
    workers: int = 2
    eval_fraction: float = 0.3
    train_epochs: int = 0  # 0: the recipe's own number of epochs
    compact_vocab_size: int = 6000
    onnx_variant: str = "int8"
    train_batch_size: int = 0  # 0: the recipe's own batch size

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "PipelineSettings":
        """Settings from ``MM_*`` variables (see ``ENV_VARIABLES``); unset ones keep the defaults."""
        values = {}
        for field, variable in ENV_VARIABLES.items():
            if variable not in env:
                continue
            kind = cls.model_fields[field].annotation
            try:
                values[field] = kind(env[variable])
            except ValueError:
                raise ValueError(f"{variable}={env[variable]!r} is not a valid {kind.__name__}") from None
        values.setdefault("workers", os.cpu_count() or 2)
        return cls(**values)

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.data_dir))

    def batch_file(self, batch: str) -> Path:
        return Path(self.incoming_dir) / f"{batch}.parquet"

    def batch_names(self) -> list[str]:
        """Batch files currently in the incoming folder, in order; each is one partition."""
        return sorted(p.stem for p in Path(self.incoming_dir).glob("*.parquet") if not p.name.startswith("."))


def materialized_batches(settings: PipelineSettings, instance: dg.DagsterInstance) -> list[BatchFiles]:
    """Registered batches whose cleaned text and image tensors exist on disk, in partition order."""
    layout = settings.layout
    batches = [
        BatchFiles(name, layout.cleaned_text(name), layout.image_tensors(name))
        for name in sorted(instance.get_dynamic_partitions(catalogue_batches.name))
    ]
    return [b for b in batches if b.cleaned_text.exists() and b.image_tensors.exists()]


def build_wandb_resource() -> dg.ResourceDefinition:
    """dagster-wandb's resource, offline unless ``WANDB_MODE`` says otherwise (placeholder key offline)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    return wandb_resource.configured({"api_key": os.environ.get("WANDB_API_KEY", WANDB_PLACEHOLDER_KEY)})
