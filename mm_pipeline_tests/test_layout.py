"""Every artifact path comes from one table in ``Layout``."""

from __future__ import annotations

from pathlib import Path

from mm_pipeline.layout import Layout


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


def test_metric_summaries_lists_what_was_written(tmp_path):
    layout = Layout(tmp_path)
    for task in ("gender", "category"):
        layout.metric_summary(task).parent.mkdir(parents=True)
        layout.metric_summary(task).write_text("{}")
    assert layout.metric_summaries() == [layout.metric_summary("category"), layout.metric_summary("gender")]
