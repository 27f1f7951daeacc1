"""MM_DEVICE: device and precision choice (faked capabilities), CPU fp32 export copies, ONNX Runtime providers,
and fine-tuning through the device code path on the CPU."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mm_pipeline.inference.encoders import execution_providers
from mm_pipeline.model.clip import build_clip
from mm_pipeline.model.device import (
    CPU,
    Compute,
    bf16_pays,
    cpu_flags,
    cpu_fp32,
    cpu_has_native_bf16,
    resolve,
    training_compute,
)
from mm_pipeline.model.events import StepEvent
from mm_pipeline.model.pairs import PairedData
from mm_pipeline.model.split import NO_GROUP
from mm_pipeline.model.train import RECIPES, batches_of, fine_tune, step_inputs

MICRO_CONFIG = {
    "embed_dim": 32,
    "image_resolution": 32,
    "image_tower": "cnn",
    "vision_layers": 2,
    "vision_width": 8,
    "vision_patch_size": 16,
    "context_length": 77,
    "vocab_size": 100,
    "transformer_width": 32,
    "transformer_heads": 2,
    "transformer_layers": 1,
}


def test_cpu_flags_parses_cpuinfo(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_tile\nbugs\t: none\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("flags", "capability", "native"),
    [
        ({"avx2", "fma"}, "AVX2", False),
        ({"avx512f", "avx512_vnni"}, "AVX512", False),
        ({"avx512f", "avx512_bf16"}, "AVX512", True),  # Cooper Lake, Zen 4
        ({"avx512f", "amx_bf16", "amx_tile"}, "AVX512", True),  # Sapphire Rapids
        (set(), "AMX", True),  # flags unreadable, torch names AMX
    ],
)
def test_native_bf16_from_flags_or_capability(flags, capability, native):
    assert cpu_has_native_bf16(frozenset(flags), capability) is native


def test_resolve_device_and_autocast_choice():
    cuda = torch.device("cuda")
    assert resolve("auto", cuda_available=True, cuda_bf16=True) == Compute(cuda, torch.bfloat16)
    assert resolve("auto", cuda_available=True, cuda_bf16=False) == Compute(cuda, None)
    assert resolve("cuda", cuda_available=True, cuda_bf16=True).precision == "bfloat16"
    assert resolve("auto", cuda_available=False, native_bf16=True) == Compute(
        torch.device("cpu"), torch.bfloat16
    )
    assert resolve("auto", cuda_available=False, native_bf16=False) == CPU
    # an explicit cpu keeps fp32 everywhere, so it reproduces earlier runs exactly
    assert resolve("cpu", cuda_available=True, native_bf16=True) == CPU
    assert CPU.precision == "fp32"
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        resolve("cuda", cuda_available=False)
    with pytest.raises(ValueError, match="MM_DEVICE='gpu'"):
        resolve("gpu")


def test_bf16_only_where_it_pays(monkeypatch):
    small, large = build_clip(MICRO_CONFIG), torch.nn.Linear(8000, 8000)  # large: 64 M parameters
    assert not bf16_pays(small, 256, cuda=False) and not bf16_pays(small, 256, cuda=True)
    assert bf16_pays(large, 32, cuda=False)
    assert not bf16_pays(large, 32, cuda=True) and bf16_pays(large, 128, cuda=True)
    cuda = torch.device("cuda")
    monkeypatch.setattr("mm_pipeline.model.device.resolve", lambda name: Compute(cuda, torch.bfloat16))
    assert training_compute("auto", large, 32) == Compute(cuda, None)
    assert training_compute("auto", large, 128) == Compute(cuda, torch.bfloat16)
    assert training_compute("auto", small, 128) == Compute(cuda, None)


def test_cpu_fp32_copies_only_when_needed():
    clip = build_clip(MICRO_CONFIG)
    assert cpu_fp32(clip) is clip
    half = build_clip(MICRO_CONFIG).to(torch.bfloat16)
    copy = cpu_fp32(half)
    assert copy is not half and next(copy.parameters()).dtype == torch.float32
    assert next(half.parameters()).dtype == torch.bfloat16  # the original is left as it was


def test_execution_providers():
    cpu_only, with_cuda = ["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("auto", cpu_only) == cpu_only
    assert execution_providers("auto", with_cuda) == with_cuda
    assert execution_providers("cpu", with_cuda) == cpu_only
    assert execution_providers("cuda", with_cuda) == with_cuda
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        execution_providers("cuda", cpu_only)
    with pytest.raises(ValueError):
        execution_providers("tpu", cpu_only)


def _micro_pairs(n: int = 96) -> PairedData:
    rng = np.random.default_rng(0)
    ids = np.zeros((n, 77), np.int32)
    ids[:, 0] = 2
    for row in range(n):
        length = int(rng.integers(3, 12))
        ids[row, 1:length] = rng.integers(4, 100, length - 1)
        ids[row, length] = 3
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    group = np.full(n, NO_GROUP)
    group[:4] = 7
    return PairedData(np.arange(n), [ids], [images], np.zeros(n, np.int32), np.arange(n), group)


def test_step_inputs_are_seeded_per_step():
    data, recipe = _micro_pairs(), RECIPES["compact"]
    index = np.arange(8)
    first = step_inputs(data, index, recipe, 5, torch.device("cpu"))
    again = step_inputs(data, index, recipe, 5, torch.device("cpu"))
    assert set(first) == {"images", "ids", "same", "image_view", "text_view"}
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(
        first["images"], step_inputs(data, index, recipe, 6, torch.device("cpu"))["images"]
    )
    assert first["same"][0, 1] and not first["same"][0, 0]


@pytest.mark.parametrize(("device", "ahead"), [("cpu", False), ("cuda", True)])
def test_training_batches_are_made_ahead_only_for_a_gpu(device, ahead):
    """On the CPU a batch is made when the loop asks for it; for a GPU the next one is already under way."""
    made = []

    def load(step: int) -> dict[str, torch.Tensor]:
        made.append(step)
        return {"step": torch.tensor(step)}

    batches = batches_of(load, range(3), torch.device(device))
    step, batch = next(batches)
    assert step == 0 and int(batch["step"]) == 0
    if ahead:
        deadline = time.monotonic() + 5
        while made != [0, 1] and time.monotonic() < deadline:
            time.sleep(0.01)
    assert made == ([0, 1] if ahead else [0])
    assert [s for s, _ in batches] == [1, 2] and made == [0, 1, 2]


def _train(compute: Compute, tmp_path: Path) -> tuple[dict, list[dict]]:
    data = _micro_pairs()
    recipe = dataclasses.replace(RECIPES["compact"], epochs=2, batch_size=16, checkpoint_every=3)
    torch.manual_seed(0)
    clip = build_clip(MICRO_CONFIG)
    events = []
    keep = np.arange(len(data)) < 64
    fine_tune(clip, data.subset(keep), data.subset(~keep), recipe, tmp_path, "job", events.append, compute)
    losses = [e.loss for e in events if isinstance(e, StepEvent)]
    return clip.state_dict(), losses


@pytest.mark.slow
def test_fine_tune_on_cpu_device_paths(tmp_path: Path):
    """MM_DEVICE=cpu runs the default path (identical weights); bf16 autocast trains the same model to a
    close loss curve and returns fp32 weights on the CPU."""
    default, default_losses = _train(CPU, tmp_path / "default")
    explicit, _ = _train(resolve("cpu"), tmp_path / "explicit")
    assert all(torch.equal(default[k], explicit[k]) for k in default)
    bf16, bf16_losses = _train(Compute(torch.device("cpu"), torch.bfloat16), tmp_path / "bf16")
    assert all(t.device.type == "cpu" and t.dtype == default[k].dtype for k, t in bf16.items())
    assert np.allclose(bf16_losses, default_losses, rtol=0.05, atol=0.05)
