"""Where torch work runs (``MM_DEVICE``), in which precision, and how batches reach the device.

``auto`` runs on CUDA when torch sees a GPU, else on the CPU; ``cpu`` and ``cuda`` force one (``cuda`` fails
when there is none). Training autocasts to bf16 on CUDA GPUs that support it and, under ``auto``, on CPUs that
compute bf16 in hardware (AMX or AVX512-BF16), in both cases only for workloads where that pays off
(:func:`bf16_pays`); ``cpu`` keeps fp32, so it reproduces earlier results exactly. Export and parity always run on a CPU fp32 copy.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from mm_pipeline.inference.encoders import NATIVE_BF16_FLAGS, cpuinfo_fields

DEVICES = ("auto", "cpu", "cuda")
# bf16 autocast on a native-bf16 CPU (AVX512-BF16, measured by benchmarks/bench_training.py) trains
# ViT-B/32-384 (150 M parameters) 1.5-1.8x faster but the compact model (3.2 M) at 0.5-0.7x: small models' many
# small operations lose more to conversions than their matrix products gain
CPU_BF16_MIN_PARAMETERS = 50_000_000
# on an H200 (benchmarks/device_check.sh) bf16 autocast trains ViT-B/32-384 at batch 32 at 0.6x fp32 (the GPU
# waits on kernel launches and the casts add more) and at batch 128 at 2.55x (1,054 vs 413 products/s); the
# compact model at batch 64 runs at 0.28x
GPU_BF16_MIN_BATCH = 128


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (first ``flags`` line of ``cpuinfo``); empty where the file is unreadable."""
    return frozenset(cpuinfo_fields(cpuinfo).get("flags", "").split())


def cpu_has_native_bf16(flags: frozenset[str] | None = None, capability: str | None = None) -> bool:
    """Whether the CPU multiplies bf16 in hardware: an AMX or AVX512-BF16 flag, or a torch CPU capability
    naming AMX. Elsewhere torch emulates bf16 and autocast is several times slower than fp32.

    ``flags`` default to :func:`cpu_flags`, ``capability`` to ``torch.backends.cpu.get_cpu_capability()``.
    """
    flags = cpu_flags() if flags is None else flags
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    return bool(flags & NATIVE_BF16_FLAGS) or "AMX" in capability.upper()


@dataclass(frozen=True)
class Compute:
    """A torch device and the autocast dtype for training on it (``None``: plain fp32)."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` to ``autocast_dtype`` on this device; a no-op context for fp32."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def precision(self) -> str:
        return "fp32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")


CPU = Compute(torch.device("cpu"))


def resolve(
    name: str = "auto",
    *,
    cuda_available: bool | None = None,
    cuda_bf16: bool | None = None,
    native_bf16: bool | None = None,
) -> Compute:
    """The :class:`Compute` for an ``MM_DEVICE`` value (see the module docstring).

    What the hardware allows: :func:`training_compute` also weighs the workload. The keyword arguments replace
    what would be detected (tests fake them). Raises
    ``ValueError`` for an unknown name and ``RuntimeError`` for ``cuda`` without a CUDA GPU.
    """
    if name not in DEVICES:
        raise ValueError(f"MM_DEVICE={name!r} is not one of {', '.join(DEVICES)}")
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if name == "cuda" and not cuda_available:
        raise RuntimeError("MM_DEVICE=cuda but torch sees no CUDA GPU; use MM_DEVICE=auto or cpu")
    if name == "cuda" or (name == "auto" and cuda_available):
        bf16 = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        return Compute(torch.device("cuda"), torch.bfloat16 if bf16 else None)
    if name == "auto" and (cpu_has_native_bf16() if native_bf16 is None else native_bf16):
        return Compute(torch.device("cpu"), torch.bfloat16)
    return CPU


def bf16_pays(module: nn.Module, batch_size: int, cuda: bool) -> bool:
    """Whether bf16 autocast speeds up training ``module`` at ``batch_size``: a model of at least
    ``CPU_BF16_MIN_PARAMETERS`` parameters, on a GPU also batches of at least ``GPU_BF16_MIN_BATCH``."""
    large = sum(p.numel() for p in module.parameters()) >= CPU_BF16_MIN_PARAMETERS
    return large and (not cuda or batch_size >= GPU_BF16_MIN_BATCH)


def training_compute(name: str, module: nn.Module, batch_size: int) -> Compute:
    """:func:`resolve` for training ``module`` at ``batch_size``, in fp32 where bf16 would not pay off."""
    compute = resolve(name)
    if compute.autocast_dtype is not None and not bf16_pays(
        module, batch_size, compute.device.type == "cuda"
    ):
        return Compute(compute.device)
    return compute


Module = TypeVar("Module", bound=nn.Module)


def cpu_fp32(module: Module) -> Module:
    """``module`` itself when all its parameters and buffers are fp32 on the CPU, else such a copy (the
    original stays where it is)."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(
        t.device.type == "cpu" and (t.dtype == torch.float32 or not t.is_floating_point()) for t in tensors
    ):
        return module
    return copy.deepcopy(module).to("cpu", torch.float32)


def staged(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor made ready to move to ``device``: pinned when that is a GPU (so the copy can be async)."""
    return tensor.pin_memory() if device.type == "cuda" else tensor


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; asynchronous from pinned memory (:func:`staged`)."""
    return tensor.to(device, non_blocking=True)
