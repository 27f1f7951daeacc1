"""Where every artifact lives on disk, down to the file, derived from one data directory (no Dagster here).

Assets pass these paths to each other through lineage; the same layout lets the CLI and tests find them.
Files that only make sense together (accepted + rejected rows, a metric's summary + table, an index + its
lookup, the base model's vectors + their nm) share one folder written with
:func:`mm_pipeline.storage.atomic_dir`, so they change as a set: a writer puts ``layout.<file>.name`` into
the folder it is given, a reader of several files pins the folder once (:func:`mm_pipeline.storage.pin`)
and opens ``pinned / layout.<file>.name``.

Every path is one line of the table in :class:`Layout`: ``_Path(parent, *parts)`` is a fixed path under
another member, ``_PathOf(parent, template)`` a path per key (batch, model stage, task, vector kind, version)
with the key in place of ``{}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mm_pipeline.model.files import (
    BEST_CHECKPOINT_FILE,
    BPE_FILE,
    LAST_CHECKPOINT_FILE,
    MANIFEST_FILE,
    PARITY_FILE,
    TRAINING_FILE,
    WEIGHTS_FILE,
)


class _Path:
    """A fixed path of the layout: ``parts`` under the member named ``parent``."""

    def __init__(self, parent: str, *parts: str) -> None:
        self.parent, self.parts = parent, parts

    def __get__(self, layout: Layout | None, owner: type | None = None) -> Path:
        if layout is None:  # looked up on the class
            return self  # type: ignore[return-value]
        return Path(getattr(layout, self.parent)).joinpath(*self.parts)


class _PathOf:
    """A path per key: ``template`` (``{}`` stands for the key) under the member named ``parent``."""

    def __init__(self, parent: str, template: str) -> None:
        self.parent, self.template = parent, template

    def __get__(self, layout: Layout | None, owner: type | None = None) -> Callable[[str], Path]:
        if layout is None:
            return self  # type: ignore[return-value]
        base = Path(getattr(layout, self.parent))
        return lambda key: base / self.template.format(key)


@dataclass(frozen=True)
class Layout:
    data_dir: Path

    store = _Path("data_dir", "store")
    wandb_dir = _Path("data_dir", "wandb")  # W&B's runs folder unless WANDB_DIR says otherwise

    # ingest, per catalogue batch
    raw_dir = _PathOf("store", "raw_products/{}")  # accepted + rejected, one set
    raw_accepted = _PathOf("store", "raw_products/{}/accepted.parquet")
    raw_rejected = _PathOf("store", "raw_products/{}/rejected.parquet")
    cleaned_text = _PathOf("store", "cleaned_text/{}.parquet")
    image_tensors = _PathOf("store", "image_tensors/{}.npy")  # uint8 [N, size, size, 3]

    # model: ``model_dir(stage)``, stage ``base`` or ``fine_tuned``, is a ruCLIP-style folder readable by
    # ``CLIP.from_pretrained`` (config.json, bpe.model, pytorch_model.bin; training.json, lexical.joblib)
    model_dir = _PathOf("store", "models/{}")
    model_weights = _PathOf("store", "models/{}/" + WEIGHTS_FILE)
    model_bpe = _PathOf("store", "models/{}/" + BPE_FILE)
    model_training = _PathOf("store", "models/{}/" + TRAINING_FILE)  # origin, recipe, history, fusion choice
    compact_bpe = _Path("store", "models", "bpe", BPE_FILE)  # learned for a compact model from scratch
    downloads_dir = _Path("store", "downloads")  # ruCLIP folders fetched by MM_RUCLIP_NAME
    checkpoints_dir = _Path("store", "models", "checkpoints")  # the fine-tuning job's, written by Checkpoints
    checkpoint_last = _Path("checkpoints_dir", LAST_CHECKPOINT_FILE)  # resumed by a rerun of the same job
    checkpoint_best = _Path("checkpoints_dir", BEST_CHECKPOINT_FILE)  # the best epoch's weights so far
    token_dir = _Path("checkpoints_dir", "tokens")  # int32 token memmaps per batch and tokenizer
    onnx_dir = _Path("store", "onnx")  # image/text towers of every exported variant, one set
    onnx_manifest = _Path("onnx_dir", MANIFEST_FILE)  # model version, files, fusion weights
    onnx_parity = _Path("onnx_dir", PARITY_FILE)  # onnx_parity's report and timing

    # embeddings, per catalogue batch: nm, image, text, lexical, fused, model_version
    embeddings = _PathOf("store", "embeddings/{}.parquet")

    # evaluation
    base_embeddings_dir = _Path("store", "base_model_embeddings")  # one set: the eval products' base vectors
    base_vectors = _PathOf("base_embeddings_dir", "{}.npy")  # kind image or text: float32 [n, d]
    base_nm = _Path("base_embeddings_dir", "nm.parquet")  # their nm, row for row
    metrics_dir = _Path("store", "metrics")
    metric_dir = _PathOf("metrics_dir", "{}")  # one set per task
    metric_summary = _PathOf("metrics_dir", "{}/summary.json")
    metric_table = _PathOf("metrics_dir", "{}/table.parquet")
    # neighbour precision@k of a label task (model, features, k, precision, se, n)
    metric_neighbours = _PathOf("metrics_dir", "{}/neighbours.parquet")
    similarity_dir = _Path("store", "similarity")
    index_dir = _Path("similarity_dir", "index")  # one set: the faiss index and its row -> nm lookup
    index_file = _Path("index_dir", "fused.faiss")  # (+ fused.faiss.json, its metadata)
    index_lookup = _Path("index_dir", "lookup.parquet")  # nm, title, batch, model_version per row
    duplicate_pairs = _Path("similarity_dir", "duplicate_pairs.parquet")

    # publish
    published_dir = _Path("store", "published")
    published_embeddings = _Path("published_dir", "embeddings.parquet")  # the version consumers read
    published_manifest = _Path("published_dir", "manifest.json")  # model, gates, metrics, batches, time
    published_versions_dir = _Path("published_dir", "versions")  # kept versions, for consumers that pin one
    published_version = _PathOf("published_versions_dir", "{}.parquet")
    published_version_manifest = _PathOf("published_versions_dir", "{}.json")

    def metric_summaries(self) -> list[Path]:
        """The summary file of every metric written so far, in task-name order."""
        pattern = self.metric_summary("*").relative_to(self.metrics_dir)
        return sorted(self.metrics_dir.glob(str(pattern)))
