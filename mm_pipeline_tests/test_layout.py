"""Every artifact path comes from one table in ``Layout``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mm_pipeline.layout import Layout
from mm_pipeline.model import files


def test_the_layout_names_every_file_under_the_store():
    layout = Layout(Path("data"))
    store = Path("data/store")
    assert layout.raw_accepted("b") == store / "raw_products/b/accepted.parquet"
    assert layout.raw_accepted("b").parent == layout.raw_dir("b")
    assert layout.index_file == store / "similarity/index/fused.faiss"
    assert layout.base_vectors("image") == store / "base_model_embeddings/image.npy"
    assert layout.model_training("base") == layout.model_dir("base") / "training.json"
    assert layout.published_version_manifest("v1") == store / "published/versions/v1.json"
    assert layout.metric_summary("category").parent == layout.metric_dir("category")
    assert layout.checkpoint_last == store / "models/checkpoints/last.pt"
    assert layout.checkpoint_best == layout.checkpoints_dir / "best.pt"
    assert layout.wandb_dir == Path("data/wandb")


def test_file_names_inside_folders_are_spelled_once_in_files():
    # the names the code writes are the names ruCLIP, the ONNX runtime and resuming read back
    assert (files.CONFIG_FILE, files.BPE_FILE, files.WEIGHTS_FILE) == (
        "config.json",
        "bpe.model",
        "pytorch_model.bin",
    )
    assert (files.LEXICAL_FILE, files.LAST_CHECKPOINT_FILE, files.BEST_CHECKPOINT_FILE) == (
        "lexical.joblib",
        "last.pt",
        "best.pt",
    )
    layout = Layout(Path("data"))
    assert layout.model_weights("base").name == files.WEIGHTS_FILE
    assert layout.checkpoint_last.name == files.LAST_CHECKPOINT_FILE


def test_the_layout_imports_without_torch():
    code = "import sys, mm_pipeline.layout, mm_pipeline.model.files; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_metric_summaries_lists_what_was_written(tmp_path):
    layout = Layout(tmp_path)
    for task in ("gender", "category"):
        layout.metric_summary(task).parent.mkdir(parents=True)
        layout.metric_summary(task).write_text("{}")
    assert layout.metric_summaries() == [layout.metric_summary("category"), layout.metric_summary("gender")]
