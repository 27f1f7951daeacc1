"""Model assets through Dagster: the compact base model, progress logs, W&B offline runs, blocking parity."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import wandb
from wandb.proto import wandb_internal_pb2
from wandb.sdk.internal import datastore

from mm_pipeline.defs.partitions import catalogue_batches
from mm_pipeline.defs.resources import WANDB_PLACEHOLDER_KEY
from mm_pipeline.inference.encoders import ParityError, choose_variant
from mm_pipeline.model.clip import COMPACT_CONFIG, TextTower, load_folder
from mm_pipeline.model.export import export_towers
from mm_pipeline.model.split import eval_mask
from mm_pipeline.prep.tokens import TextTokenizer
from mm_pipeline_tests.defs.conftest import make_pipeline, tiny_model_pipeline

EVAL_WORD, TRAIN_WORD = "зюзюблик", "хрюндель"


def test_compact_base_model_learns_its_bpe_from_the_training_split_only(tmp_path, small_sample):
    """Without MM_RUCLIP_DIR: a compact ruCLIP from scratch whose BPE never saw an eval-split text."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for path in sorted((small_sample / "batches").glob("*.parquet")):
        frame = pd.read_parquet(path)
        is_eval = eval_mask(frame, 0.3)
        word = pd.Series(TRAIN_WORD, index=frame.index).where(~is_eval, EVAL_WORD)
        frame["title"] = frame["title"] + " " + word + " " + word
        frame.to_parquet(incoming / path.name, index=False)
    pipeline = make_pipeline(tmp_path, incoming, small_sample / "images", eval_fraction=0.3)
    for batch in pipeline.register():
        assert pipeline.run("ingest_job", batch).success

    run = pipeline.defs.resolve_job_def("model_job").execute_in_process(
        instance=pipeline.instance, asset_selection=[dg.AssetKey("base_model")], raise_on_error=False
    )
    assert run.success
    assert [e.asset_key.path[-1] for e in run.get_asset_materialization_events()] == ["base_model"]
    meta = run.asset_materializations_for_node("base_model")[0].metadata
    layout = pipeline.settings.layout
    cleaned = pd.concat(pd.read_parquet(layout.cleaned_text(b)) for b in pipeline.settings.batch_names())
    train_texts = int((~eval_mask(cleaned, 0.3)).sum())
    assert meta["origin"].value.startswith("compact ruCLIP, trained from scratch")
    assert f"BPE on {train_texts} texts" in meta["origin"].value
    assert 0 < train_texts < len(cleaned)
    training = json.loads(layout.model_training("base").read_text())
    assert training == {"origin": "compact, trained from scratch", "bpe_corpus_texts": train_texts}
    sizes = {k: v for k, v in meta["config"].value.items() if k in COMPACT_CONFIG and k != "vocab_size"}
    assert sizes == {k: v for k, v in COMPACT_CONFIG.items() if k != "vocab_size"} | {"image_resolution": 96}

    vocab = set(TextTokenizer(layout.model_bpe("base")).bpe.vocab())
    assert f"▁{TRAIN_WORD}" in vocab  # a word of the training texts became a token ...
    assert not any(EVAL_WORD[1:5] in piece for piece in vocab)  # ... a word only in eval texts left no trace


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_sample, tiny_ruclip_dir):
    """Batches ingested and a one-epoch model_job run, logging to an offline W&B run."""
    tmp_path = tmp_path_factory.mktemp("trained")
    wandb.teardown()  # W&B keeps the settings of its first use in a process; start from this test's
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_API_KEY", WANDB_PLACEHOLDER_KEY)
        for variable in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
            env.setenv(variable, str(tmp_path / "wandb"))
        pipeline = tiny_model_pipeline(
            tmp_path, small_sample / "batches", small_sample / "images", tiny_ruclip_dir
        )
        for batch in pipeline.register():
            assert pipeline.run("ingest_job", batch).success
        run = pipeline.run("model_job")
        wandb.teardown()
    assert run.success
    return pipeline, run, tmp_path / "wandb"


STEP_LINE = re.compile(r"epoch 0 step (\d+)/(\d+) loss \d+\.\d{4} lr \d\.\d\de-\d\d \d+ items/s")


def test_fine_tuning_progress_is_in_the_run_logs(trained):
    pipeline, run, _ = trained
    messages = [r.user_message for r in pipeline.instance.all_logs(run.run_id)]
    steps = [STEP_LINE.fullmatch(m) for m in messages]
    logged = [(int(s[1]), int(s[2])) for s in steps if s]
    total = logged[0][1]
    assert total > 2 and (1, total) in logged and (total, total) in logged  # first step and epoch end
    assert any(re.fullmatch(r"epoch 0: val loss \d+\.\d{4} R@1 .* best epoch 0", m) for m in messages)


def _history(wandb_dir: Path) -> list[dict]:
    """The rows a W&B offline run logged, read back from its ``.wandb`` file."""
    (log,) = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    store = datastore.DataStore()
    store.open_for_scan(str(log))
    rows = []
    while (data := store.scan_data()) is not None:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


def test_fine_tuning_writes_an_offline_wandb_run(trained):
    _, run, wandb_dir = trained
    rows = _history(wandb_dir)
    steps = [r for r in rows if "train/loss" in r]
    assert (
        len(steps)
        == run.asset_materializations_for_node("fine_tuned_model")[0].metadata["train_products"].value // 32
    )
    assert [r["step"] for r in steps] == list(range(1, len(steps) + 1))
    assert all(r["epoch"] == 0 and r["train/lr"] > 0 and r["train/items_per_s"] > 0 for r in steps)
    assert any("val_recall_at_5" in r and r["epoch"] == 0 for r in rows)


def test_corrupted_onnx_export_fails_parity_and_blocks_embeddings(trained, tmp_path):
    pipeline, run, _ = trained
    (check,) = run.get_asset_check_evaluations()
    good = check.metadata
    assert check.passed and good["min_cosine_fp32"].value >= 0.9999
    for variant in ("fp32", "int8"):
        assert good[f"max_abs_diff_{variant}"].value >= 0 and good[f"bytes_{variant}"].value > 0
    assert good["bytes_int8"].value < good["bytes_fp32"].value
    layout = pipeline.settings.layout
    passed = good["passed_variants"].value.split(", ")
    assert choose_variant(layout.onnx_dir, "int8") == ("int8" if "int8" in passed else "fp32")

    class ArgmaxPooling(TextTower):
        """The original project's export bug: pool at the largest token id instead of the EOS."""

        def eos_positions(self, ids):
            return ids.argmax(dim=1)

    model_dir = layout.model_dir("fine_tuned")
    clip = load_folder(model_dir).clip
    broken = export_towers(clip, model_dir, tmp_path / "broken", text_module=ArgmaxPooling(clip))
    for name in ("text.onnx", "text.int8.onnx"):
        shutil.copyfile(broken / name, layout.onnx_dir / name)

    job = dg.define_asset_job(
        "parity_then_embeddings",
        selection=dg.AssetSelection.checks_for_assets("onnx_model") | dg.AssetSelection.assets("embeddings"),
        partitions_def=catalogue_batches,
    )
    defs = dg.Definitions.merge(pipeline.defs, dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def("parity_then_embeddings").execute_in_process(
        instance=pipeline.instance, partition_key="batch_000", raise_on_error=False
    )
    (failed,) = result.get_asset_check_evaluations()
    assert not failed.passed
    bad = failed.metadata
    assert bad["min_cosine_fp32"].value < 0.9999 and bad["min_cosine_int8"].value < 0.995
    assert bad["bytes_fp32"].value > 0 and bad["max_abs_diff_fp32"].value > good["max_abs_diff_fp32"].value
    started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert started == ["onnx_model_onnx_parity"]  # the blocking check stopped embeddings from starting
    assert not layout.embeddings("batch_000").exists()

    # a later embeddings run refuses the export too: choose_variant reads the failed report
    with pytest.raises(ParityError, match="failed onnx_parity"):
        choose_variant(layout.onnx_dir, "int8")
    embed = pipeline.run("embeddings_job", "batch_000")
    (failure,) = embed.get_step_failure_events()
    assert "failed onnx_parity (passed variants: none)" in failure.step_failure_data.error.message
    assert not layout.embeddings("batch_000").exists()
