"""What the model stage starts from and how it trains (no Dagster here).

The base model comes from the first source configured: a pretrained ruCLIP folder (``MM_RUCLIP_DIR``), a
download (``MM_RUCLIP_NAME``), or else a compact ruCLIP trained from scratch, whose BPE is learned on the
training split only (an eval text never shapes the vocabulary). The base folder's ``training.json`` says
which it was, and that decides the fine-tuning recipe: ``compact`` for a model from scratch, ``pretrained``
otherwise (:data:`mm_pipeline.model.train.RECIPES`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mm_pipeline.layout import Layout
from mm_pipeline.model.clip import (
    COMPACT_CONFIG,
    LoadedModel,
    ModelSourceError,
    build_clip,
    download,
    load_folder,
    save_folder,
)
from mm_pipeline.model.export import weights_version
from mm_pipeline.model.pairs import BatchFiles, iter_texts, load_split_columns, training_split
from mm_pipeline.model.train import RECIPES, TrainConfig
from mm_pipeline.prep.tokens import TextTokenizer, train_bpe
from mm_pipeline.storage import atomic_dir

COMPACT_ORIGIN = "compact, trained from scratch"  # the training.json origin of a base model built here


class NoBatchesError(ValueError):
    """Training data is needed and no catalogue batch has been ingested."""


def require_batches(batches: Sequence[BatchFiles]) -> Sequence[BatchFiles]:
    """``batches``, or :class:`NoBatchesError` when there are none."""
    if not batches:
        raise NoBatchesError(
            "no catalogue batch has cleaned_text and image_tensors yet; materialize them first"
        )
    return batches


@dataclass(frozen=True)
class BaseModel:
    origin: str  # human-readable: "pretrained from …", or the compact model with its BPE corpus
    config: dict  # the ruCLIP config.json
    path: Path  # layout.model_dir("base")
    model_version: str
    parameters: int


def build_base_model(
    layout: Layout,
    batches: Sequence[BatchFiles],
    *,
    ruclip_dir: str = "",
    ruclip_name: str = "",
    image_size: int,
    eval_fraction: float,
    vocab_size: int,
) -> BaseModel:
    """Write ``layout.model_dir("base")`` from the first source configured (see the module docstring).

    ``batches`` are the materialized catalogue batches, read only for a compact model. Raises
    ``ModelSourceError`` when the source cannot be loaded or expects other than ``image_size`` px images, and
    :class:`NoBatchesError` when a compact model has nothing to learn its BPE from."""
    target = layout.model_dir("base")
    loaded = _pretrained(layout, ruclip_dir, ruclip_name)
    if loaded is None:
        origin, config = _compact(layout, require_batches(batches), eval_fraction, vocab_size, image_size)
    else:
        wanted = loaded.config["image_resolution"]
        if wanted != image_size:
            raise ModelSourceError(
                f"{loaded.origin} expects {wanted}px images but image_tensors are {image_size}px; "
                f"set MM_IMAGE_SIZE={wanted} and rematerialize"
            )
        save_folder(loaded.clip, loaded.config, loaded.bpe_path, target, extra={"origin": loaded.origin})
        origin, config = loaded.origin, loaded.config
    parameters = sum(p.numel() for p in load_folder(target).clip.parameters())
    return BaseModel(origin, config, target, weights_version(target), parameters)


def _pretrained(layout: Layout, ruclip_dir: str, ruclip_name: str) -> LoadedModel | None:
    if ruclip_dir:
        return load_folder(ruclip_dir)
    if ruclip_name:
        return download(ruclip_name, layout.downloads_dir)
    return None


def _compact(
    layout: Layout, batches: Sequence[BatchFiles], eval_fraction: float, vocab_size: int, image_size: int
) -> tuple[str, dict]:
    """A compact ruCLIP with random weights (seed 0) and a BPE learned on the training split's texts."""
    split = training_split(load_split_columns(batches), eval_fraction, RECIPES["compact"].holdout_fraction)
    corpus_texts = int((~split["eval"]).sum())
    with atomic_dir(layout.compact_bpe.parent) as folder:
        bpe_path = train_bpe(
            iter_texts(batches, ~split["eval"]), folder / layout.compact_bpe.name, vocab_size
        )
        config = {
            **COMPACT_CONFIG,
            "vocab_size": TextTokenizer(bpe_path).vocab_size,
            "image_resolution": image_size,
        }
        torch.manual_seed(0)
        extra = {"origin": COMPACT_ORIGIN, "bpe_corpus_texts": corpus_texts}
        save_folder(build_clip(config), config, bpe_path, layout.model_dir("base"), extra=extra)
    origin = f"compact ruCLIP, trained from scratch (no pretrained weights configured; BPE on {corpus_texts} texts)"
    return origin, config


@dataclass(frozen=True)
class Recipe:
    name: str  # "compact" or "pretrained": the key in RECIPES
    config: TrainConfig  # with the configured overrides
    base_origin: str  # the base model's training.json origin


def recipe_for(layout: Layout, epochs: int = 0, batch_size: int = 0) -> Recipe:
    """The fine-tuning recipe for the base model in ``layout``: ``compact`` for one built here from scratch,
    ``pretrained`` otherwise; ``epochs`` and ``batch_size`` replace the recipe's own when not 0."""
    origin = json.loads(layout.model_training("base").read_text())["origin"]
    name = "compact" if origin == COMPACT_ORIGIN else "pretrained"
    overrides = {"epochs": epochs, "batch_size": batch_size}
    config = dataclasses.replace(RECIPES[name], **{k: v for k, v in overrides.items() if v})
    return Recipe(name, config, origin)
