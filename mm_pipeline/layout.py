"""Where every artifact lives on disk, derived from one data directory (no Dagster here).

Assets pass these paths to each other through lineage; the same layout lets the CLI and tests find them.
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

    def raw_accepted(self, batch: str) -> Path:
        return self.store / "raw_products" / f"{batch}.accepted.parquet"

    def raw_rejected(self, batch: str) -> Path:
        return self.store / "raw_products" / f"{batch}.rejected.parquet"

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
    def onnx_dir(self) -> Path:
        return self.store / "onnx"

    @property
    def metrics_dir(self) -> Path:
        return self.store / "metrics"

    @property
    def similarity_dir(self) -> Path:
        return self.store / "similarity"

    @property
    def published_dir(self) -> Path:
        return self.store / "published"
