"""Resources shared by every area: pipeline settings (paths, sizes, model source) and W&B logging."""

import os
from pathlib import Path

import dagster as dg
from dagster_wandb import wandb_resource

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.layout import Layout
from mm_pipeline.model.train import BatchFiles

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
    def from_env(cls) -> "PipelineSettings":
        env = os.environ
        return cls(
            data_dir=env.get("MM_DATA_DIR", "data"),
            incoming_dir=env.get("MM_INCOMING_DIR", "data/sample/batches"),
            images_dir=env.get("MM_IMAGES_DIR", "data/sample/images"),
            image_size=int(env.get("MM_IMAGE_SIZE", "96")),
            ruclip_dir=env.get("MM_RUCLIP_DIR", ""),
            ruclip_name=env.get("MM_RUCLIP_NAME", ""),
            workers=int(env.get("MM_WORKERS", str(os.cpu_count() or 2))),
            eval_fraction=float(env.get("MM_EVAL_FRACTION", "0.3")),
            train_epochs=int(env.get("MM_TRAIN_EPOCHS", "0")),
            onnx_variant=env.get("MM_ONNX_VARIANT", "int8"),
        )

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
