"""Fine-tuning SIGKILLed mid-epoch resumes from its last checkpoint and ends with the uninterrupted weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from mm_pipeline.catalog.contract import validate_batch
from mm_pipeline.model.files import LAST_CHECKPOINT_FILE
from mm_pipeline.prep.images import write_tensor_store
from mm_pipeline.prep.text import clean_products
from mm_pipeline.storage import write_parquet

# One thread: CPU kernels are then bit-reproducible, so a resumed run can be compared for exact equality.
TRAIN = """
import dataclasses, json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from mm_pipeline.model.clip import load_folder
from mm_pipeline.model.checkpoints import fingerprint
from mm_pipeline.model.pairs import BatchFiles, load_pairs, training_split
from mm_pipeline.model.events import StepEvent
from mm_pipeline.model.train import RECIPES, fine_tune

args = json.loads(sys.argv[1])
out = Path(args["out"])
model = load_folder(args["model"])
batches = [BatchFiles(name, Path(text), Path(images)) for name, text, images in args["batches"]]
pairs, products = load_pairs(batches, model.tokenizer, out.parent / "tokens")
split = training_split(products, 0.3, 0.15)
train, holdout = pairs.subset(split["train"]), pairs.subset(split["holdout"])
recipe = dataclasses.replace(RECIPES["compact"], epochs=2, batch_size=32, warmup_steps=3, checkpoint_every=2)
job = fingerprint(recipe, model.config, train, Path(args["model"]) / "pytorch_model.bin")
log = open(out / "events.jsonl", "a")

def on_progress(event):
    log.write(json.dumps(event.as_dict()) + "\\n")
    log.flush()
    if isinstance(event, StepEvent) and [event.epoch, event.step] == args["stall_at"]:
        (out / "stalled").touch()
        time.sleep(600)

result = fine_tune(model.clip, train, holdout, recipe, out / "checkpoints", job, on_progress)
torch.save(model.clip.state_dict(), out / "final.pt")
(out / "result.json").write_text(json.dumps({"resumed_from": result.resumed_from, "steps": len(train) // 32}))
"""


def _prepare(sample: Path, out: Path) -> list[list[str]]:
    batches = []
    for path in sorted((sample / "batches").glob("*.parquet")):
        accepted = validate_batch(path, sample / "images").accepted
        cleaned = write_parquet(clean_products(accepted), out / f"{path.stem}.parquet")
        write_tensor_store(accepted["image_file"].tolist(), out / f"{path.stem}.npy", 96)
        batches.append([path.stem, str(cleaned), str(out / f"{path.stem}.npy")])
    return batches


def _train(out: Path, model: Path, batches: list, stall_at=None) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    args = {"out": str(out), "model": str(model), "batches": batches, "stall_at": stall_at}
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN, json.dumps(args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoints" / LAST_CHECKPOINT_FILE, weights_only=False)


def test_sigkill_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path, small_sample, tiny_ruclip_dir):
    batches = _prepare(small_sample, tmp_path / "prepared")
    straight, killed = tmp_path / "runs" / "straight", tmp_path / "runs" / "killed"
    _finish(_train(straight, tiny_ruclip_dir, batches))

    # the victim checkpoints at epoch 1 step 4, takes step 5, then hangs there until it is killed
    victim = _train(killed, tiny_ruclip_dir, batches, stall_at=[1, 5])
    deadline = time.monotonic() + 90
    while not (killed / "stalled").exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (killed / "stalled").exists(), victim.communicate()[1][-3000:]
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    saved = _checkpoint(killed)
    assert (saved["epoch"], saved["step"]) == (1, 4) and len(saved["history"]) == 1

    _finish(_train(killed, tiny_ruclip_dir, batches))
    result = json.loads((killed / "result.json").read_text())
    assert result["resumed_from"] == "epoch 1 step 4"
    events = _events(killed)
    rerun = events[next(i for i, e in enumerate(events) if e["event"] == "resumed") :]
    assert rerun[0] == {"event": "resumed", "epoch": 1, "step": 4}
    assert (rerun[1]["epoch"], rerun[1]["step"], rerun[1]["global_step"]) == (1, 5, result["steps"] + 5)

    # counters, optimizer state and weights all equal those of the run that was never interrupted
    expected, resumed = _checkpoint(straight), _checkpoint(killed)
    assert (resumed["epoch"], resumed["step"], resumed["global_step"]) == (2, 0, 2 * result["steps"])
    assert resumed["history"] == expected["history"]
    assert all(torch.equal(resumed["model"][name], value) for name, value in expected["model"].items())
    expected_adam, resumed_adam = expected["optimizer"]["state"], resumed["optimizer"]["state"]
    assert expected_adam.keys() == resumed_adam.keys()
    for index, state in expected_adam.items():
        assert all(torch.equal(resumed_adam[index][k], v) for k, v in state.items())
    final, reference = torch.load(killed / "final.pt"), torch.load(straight / "final.pt")
    assert all(torch.equal(final[name], value) for name, value in reference.items())
