"""Shared fixtures: tiny catalogues built on the fly, the real product sets in ../shared when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings as hypothesis_settings
from PIL import Image

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

# CI replays the same examples every run (a property failure there is reproducible, never a one-off draw);
# locally hypothesis keeps drawing new ones and remembers failures in .hypothesis/
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

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


def dictionary_encoded_columns(path: Path) -> set[str]:
    """Top-level columns of a parquet file whose first row group has a dictionary page."""
    import pyarrow.parquet as pq

    row_group = pq.ParquetFile(path).metadata.row_group(0)
    columns = (row_group.column(i) for i in range(row_group.num_columns))
    dictionary = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    return {c.path_in_schema.split(".")[0] for c in columns if dictionary & set(c.encodings)}


def good_rows(n: int, start: int = 1000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "nm": np.arange(start, start + n, dtype=np.int64),
            "title": [f"Платье женское {i}" for i in range(n)],
            "description": ["<p>Летнее&nbsp;платье ✨</p>"] * n,
            "category": ["Одежда"] * n,
            "sub_category": ["Платья"] * n,
            "isadult": [False] * n,
            "brend": ["Zarina"] * n,
            "price": [1999.0] * n,
        }
    )


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


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory) -> Path:
    """~400 generated products in 2 batches, shared by tests (read-only)."""
    from mm_pipeline.sample import generate_sample

    out = tmp_path_factory.mktemp("sample")
    generate_sample(out, n=400, batches=2, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_ruclip_dir(tmp_path_factory, small_sample) -> Path:
    """A real ruCLIP folder (youtokentome BPE trained on the corpus, random small CLIP), like a download."""
    from mm_pipeline.catalog.contract import validate_batch
    from mm_pipeline.model.clip import build_clip, save_folder
    from mm_pipeline.prep.text import clean_products
    from mm_pipeline.prep.tokens import TextTokenizer, train_bpe

    texts = []
    for batch in sorted((small_sample / "batches").glob("*.parquet")):
        texts += clean_products(validate_batch(batch, small_sample / "images").accepted)["text"].tolist()
    folder = tmp_path_factory.mktemp("tiny_ruclip")
    bpe = train_bpe(texts, folder / "work" / "bpe.model", vocab_size=800)
    config = {**TINY_CONFIG, "vocab_size": TextTokenizer(bpe).vocab_size}
    torch_seed()
    return save_folder(build_clip(config), config, bpe, folder / "ruclip-tiny")


TINY_CONFIG = {
    "embed_dim": 64,
    "image_resolution": 96,
    "vision_layers": 2,
    "vision_width": 64,
    "vision_patch_size": 16,
    "context_length": 77,
    "vocab_size": 800,
    "transformer_width": 64,
    "transformer_heads": 2,
    "transformer_layers": 2,
}


def torch_seed(seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)
