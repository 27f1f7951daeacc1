"""Where every artifact lives on disk, derived from one data directory (no Dagster here).

Assets pass these paths to each other through lineage; the same layout lets the CLI and tests find them.
Files that only make sense together (accepted + rejected rows, a metric's summary + table, an index + its
lookup) share one folder written with :func:`mm_pipeline.storage.atomic_dir`, so they change as a set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    data_dir: Path

    @property
    def store(self) -> Path:
        return self.data_dir / "store"

    def raw_dir(self, batch: str) -> Path:
        return self.store / "raw_products" / batch

    def raw_accepted(self, batch: str) -> Path:
        return self.raw_dir(batch) / "accepted.parquet"

    def raw_rejected(self, batch: str) -> Path:
        return self.raw_dir(batch) / "rejected.parquet"

    def cleaned_text(self, batch: str) -> Path:
        return self.store / "cleaned_text" / f"{batch}.parquet"

    def image_tensors(self, batch: str) -> Path:
        return self.store / "image_tensors" / f"{batch}.npy"

    def embeddings(self, batch: str) -> Path:
        return self.store / "embeddings" / f"{batch}.parquet"

    def model_dir(self, stage: str) -> Path:
        """``stage`` is ``base`` or ``fine_tuned``: ruCLIP-style folders readable by ``CLIP.from_pretrained``."""
        return self.store / "models" / stage

    @property
    def checkpoints_dir(self) -> Path:
        return self.store / "models" / "checkpoints"

    @property
    def token_dir(self) -> Path:
        """Token ids of every batch as int32 memmaps, per tokenizer: shared by training and evaluation."""
        return self.checkpoints_dir / "tokens"

    @property
    def onnx_dir(self) -> Path:
        return self.store / "onnx"

    @property
    def metrics_dir(self) -> Path:
        return self.store / "metrics"

    def metric_dir(self, task: str) -> Path:
        return self.metrics_dir / task

    def metric_summary(self, task: str) -> Path:
        return self.metric_dir(task) / "summary.json"

    def metric_table(self, task: str) -> Path:
        return self.metric_dir(task) / "table.parquet"

    def metric_neighbours(self, task: str) -> Path:
        """Neighbour precision@k of a label task's vectors and references (model, features, k, precision, se, n)."""
        return self.metric_dir(task) / "neighbours.parquet"

    @property
    def base_embeddings_dir(self) -> Path:
        """The base model's vectors of the eval products (image.npy, text.npy, nm.parquet)."""
        return self.store / "base_model_embeddings"

    @property
    def similarity_dir(self) -> Path:
        return self.store / "similarity"

    @property
    def index_dir(self) -> Path:
        """The faiss index with its metadata and row → nm lookup."""
        return self.similarity_dir / "index"

    @property
    def duplicate_pairs(self) -> Path:
        return self.similarity_dir / "duplicate_pairs.parquet"

    @property
    def published_dir(self) -> Path:
        return self.store / "published"

    @property
    def published_embeddings(self) -> Path:
        """The current published version: what consumers read."""
        return self.published_dir / "embeddings.parquet"

    @property
    def published_manifest(self) -> Path:
        """The manifest of the current published version (model, gates, metrics, batches, time)."""
        return self.published_dir / "manifest.json"

    @property
    def published_versions_dir(self) -> Path:
        """Kept published versions, ``<version>.parquet`` + ``<version>.json`` each, for consumers that pin one."""
        return self.published_dir / "versions"

    def published_version(self, version: str) -> Path:
        return self.published_versions_dir / f"{version}.parquet"

    def published_version_manifest(self, version: str) -> Path:
        return self.published_versions_dir / f"{version}.json"
