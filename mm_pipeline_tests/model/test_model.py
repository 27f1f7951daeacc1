"""ruCLIP loading, fine-tuning (learns, keeps the best epoch, resumes), ONNX export and parity."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mm_pipeline.catalog.contract import validate_batch
from mm_pipeline.catalog.sample import generate_sample
from mm_pipeline.model.clip import ModelSourceError, TextTower, build_clip, download, load_folder, save_folder
from mm_pipeline.model.export import check_parity, export_towers
from mm_pipeline.model.train import (
    RECIPES,
    BatchFiles,
    fine_tune,
    fingerprint,
    load_pairs,
    load_products,
    training_split,
)
from mm_pipeline.prep.images import write_tensor_store
from mm_pipeline.prep.text import clean_products
from mm_pipeline.prep.tokens import TextTokenizer, train_bpe
from mm_pipeline.storage import write_parquet
from mm_pipeline_tests.conftest import TINY_CONFIG


def prepare(sample: Path, out: Path) -> list[BatchFiles]:
    """cleaned_text + image_tensors files of a sample, written by the core functions."""
    batches = []
    for path in sorted((sample / "batches").glob("*.parquet")):
        accepted = validate_batch(path, sample / "images").accepted
        cleaned = write_parquet(clean_products(accepted), out / f"{path.stem}.parquet")
        tensors = out / f"{path.stem}.npy"
        write_tensor_store(accepted["image_file"].tolist(), tensors, 96)
        batches.append(BatchFiles(path.stem, cleaned, tensors))
    return batches


@pytest.fixture(scope="module")
def prepared_batches(tmp_path_factory, small_sample) -> list[BatchFiles]:
    return prepare(small_sample, tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="module")
def learning_batches(tmp_path_factory) -> list[BatchFiles]:
    """A larger sample (1,200 products): a model from scratch needs some hundreds of pairs to generalize."""
    sample = tmp_path_factory.mktemp("learning_sample")
    generate_sample(sample, n=1200, batches=2, seed=0)
    return prepare(sample, tmp_path_factory.mktemp("learning_prepared"))


def test_ruclip_folder_loads_through_ruclip_code(tiny_ruclip_dir):
    loaded = load_folder(tiny_ruclip_dir)
    assert loaded.origin.startswith("pretrained from")
    assert type(loaded.clip).__module__ == "ruclip.model"
    assert loaded.config["embed_dim"] == 64


def test_incomplete_folder_and_offline_download_fail_fast(tmp_path):
    with pytest.raises(ModelSourceError, match="lacks .*pytorch_model.bin"):
        load_folder(tmp_path)
    started = time.perf_counter()
    with pytest.raises(ModelSourceError, match="MM_RUCLIP_DIR"):
        download("ruclip-vit-base-patch32-384", tmp_path, timeout=2.0)
    assert time.perf_counter() - started < 15
    with pytest.raises(ModelSourceError, match="unknown ruCLIP model"):
        download("no-such-model", tmp_path)


def _training_setup(model_dir, batches, holdout_fraction=0.15):
    model = load_folder(model_dir)
    pairs, products = load_pairs(batches, TextTokenizer(model.bpe_path))
    split = training_split(products, 0.3, holdout_fraction)
    return model, pairs.subset(split["train"]), pairs.subset(split["holdout"]), split


def test_split_keeps_dup_groups_together_and_eval_out(tiny_ruclip_dir, prepared_batches):
    _, _, _, split = _training_setup(tiny_ruclip_dir, prepared_batches)
    products = load_products(prepared_batches)
    grouped = products[products["dup_group"] >= 0].assign(eval=split["eval"][products["dup_group"] >= 0])
    assert (grouped.groupby("dup_group")["eval"].nunique() == 1).all()
    assert not (split["eval"] & (split["train"] | split["holdout"])).any()
    assert 0.2 < split["eval"].mean() < 0.4


def test_fine_tuning_beats_chance_and_keeps_best_epoch(tmp_path, learning_batches):
    """A tiny ruCLIP from scratch (BPE on this corpus) learns image↔text matching that generalizes."""
    texts = load_products(learning_batches)["text"].tolist()
    bpe = train_bpe(texts, tmp_path / "bpe" / "bpe.model", vocab_size=800)
    config = {**TINY_CONFIG, "vocab_size": TextTokenizer(bpe).vocab_size}
    torch.manual_seed(0)
    model_dir = save_folder(build_clip(config), config, bpe, tmp_path / "from_scratch")
    model, train, holdout, _ = _training_setup(model_dir, learning_batches)
    # from random weights the first epochs are a plateau; by epoch 4-5 held-out recall is ~3x chance
    recipe = dataclasses.replace(RECIPES["compact"], epochs=6, batch_size=32, lr=1e-3, warmup_steps=2)
    events = []
    result = fine_tune(model.clip, train, holdout, recipe, tmp_path / "ckpt", "job", events.append)
    assert len(result.history) == 6 and len(holdout) >= 80
    best = result.best
    assert best["val_recall_at_5"] > 1.5 * best["chance_recall_at_5"]
    assert best == max(
        result.history, key=lambda h: (h["val_recall_at_1"], h["val_recall_at_5"], -h["val_loss"])
    )
    steps = [e for e in events if e["event"] == "step"]
    assert steps and all({"loss", "lr", "items_per_s"} <= e.keys() for e in steps)


def test_resume_after_interruption_restores_counters_and_optimizer(
    tmp_path, tiny_ruclip_dir, prepared_batches
):
    recipe = dataclasses.replace(RECIPES["compact"], epochs=2, batch_size=32, checkpoint_every=2)
    model, train, holdout, _ = _training_setup(tiny_ruclip_dir, prepared_batches)
    job = fingerprint(recipe, model.config, train, tiny_ruclip_dir / "pytorch_model.bin")

    class Killed(Exception):
        pass

    def kill_mid_epoch(event):
        if event["event"] == "step" and event["epoch"] == 1 and event["step"] == 3:
            raise Killed

    with pytest.raises(Killed):
        fine_tune(model.clip, train, holdout, recipe, tmp_path, job, kill_mid_epoch)
    saved = torch.load(tmp_path / "last.pt", weights_only=False)
    assert (saved["epoch"], saved["step"]) == (1, 2) and len(saved["history"]) == 1

    resumed_model = load_folder(tiny_ruclip_dir)
    events = []
    result = fine_tune(resumed_model.clip, train, holdout, recipe, tmp_path, job, events.append)
    assert result.resumed_from == "epoch 1 step 2"
    first_step = next(e for e in events if e["event"] == "step")
    assert (first_step["epoch"], first_step["step"]) == (1, 3)
    assert len(result.history) == 2 and result.history[0] == saved["history"][0]

    # the optimizer state travelled: Adam's step counter continues from the checkpoint
    final = torch.load(tmp_path / "last.pt", weights_only=False)
    steps_per_epoch = len(train) // recipe.batch_size
    assert final["global_step"] == 2 * steps_per_epoch
    adam_steps = {int(s["step"]) for s in final["optimizer"]["state"].values()}
    assert adam_steps == {2 * steps_per_epoch}

    other_job = fine_tune(
        load_folder(tiny_ruclip_dir).clip, train, holdout, recipe, tmp_path / "x", "other", events.append
    )
    assert other_job.resumed_from is None


def test_export_matches_torch_and_broken_pooling_fails_parity(tmp_path, tiny_ruclip_dir, prepared_batches):
    model, _, _, split = _training_setup(tiny_ruclip_dir, prepared_batches)
    pairs, _ = load_pairs(prepared_batches, TextTokenizer(model.bpe_path))
    rows = np.flatnonzero(split["eval"])[:48]
    images, ids = pairs.images(rows), pairs.ids[rows]

    onnx_dir = export_towers(model.clip, tiny_ruclip_dir, tmp_path / "onnx")
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    assert {"image.onnx", "text.onnx", "image.int8.onnx", "text.int8.onnx"} <= set(manifest["files"])
    report = check_parity(model.clip, onnx_dir, images, ids)
    assert report.passed and report.passed_variants[0] == "fp32"
    # int8 is close but may miss its 0.995 floor on a tiny random model; then only fp32 is ever used
    assert min(r["min_cosine"] for r in report.rows if r["variant"] == "int8") > 0.97
    assert min(r["min_cosine"] for r in report.rows if r["variant"] == "fp32") >= 0.9999

    class ArgmaxPooling(TextTower):
        """The original project's export bug: pool at the largest token id instead of the EOS."""

        def eos_positions(self, ids):
            return ids.argmax(dim=1)

    broken = export_towers(
        model.clip, tiny_ruclip_dir, tmp_path / "broken", text_module=ArgmaxPooling(model.clip)
    )
    broken_report = check_parity(model.clip, broken, images, ids)
    assert not broken_report.passed and broken_report.passed_variants == []
    text_rows = [r for r in broken_report.rows if r["tower"] == "text"]
    assert all(not r["passed"] for r in text_rows)
