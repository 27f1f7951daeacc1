"""Shared fixtures: tiny catalogues built on the fly, the real product sets in ../shared when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_set(name: str) -> Path:
    """A real product set from ../shared/data, or a clean skip when it is absent."""
    folder = SHARED_DATA / name
    if not (folder / "products.parquet").exists():
        pytest.skip(f"real product set {folder} is not available")
    return folder


def write_jpeg(path: Path, colour=(200, 30, 30), size=(32, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG")
    return path


def good_rows(n: int, start: int = 1000) -> pd.DataFrame:
    return pd.DataFrame({
        "nm": np.arange(start, start + n, dtype=np.int64),
        "title": [f"Платье женское {i}" for i in range(n)],
        "description": ["<p>Летнее&nbsp;платье ✨</p>"] * n,
        "category": ["Одежда"] * n,
        "sub_category": ["Платья"] * n,
        "isadult": [False] * n,
        "brend": ["Zarina"] * n,
        "price": [1999.0] * n,
    })


@pytest.fixture
def catalogue(tmp_path: Path):
    """Factory: write rows (a DataFrame) as a batch with an image per nm unless told otherwise."""

    def make(rows: pd.DataFrame, name: str = "batch_a", images_for=None) -> tuple[Path, Path]:
        images = tmp_path / "images"
        images.mkdir(exist_ok=True)
        for nm in rows["nm"] if images_for is None else images_for:
            write_jpeg(images / f"{nm}.jpg")
        batches = tmp_path / "batches"
        batches.mkdir(exist_ok=True)
        path = batches / f"{name}.parquet"
        rows.to_parquet(path, index=False)
        return path, images

    return make
