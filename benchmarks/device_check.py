"""GPU-machine driver of ``bench_training.py`` (started by ``benchmarks/device_check.sh``): same arguments.

The GPU machine has torch, onnx, onnxruntime, pandas, pyarrow, pillow and scikit-learn and no network;
device_check.sh installs the wheels carried in ``.device/wheels`` for the modules it lacks. Two modules may
still be missing there, and this driver (never the project) puts stand-ins for them into ``sys.modules``
before anything imports them:

- ``youtokentome``, when its sdist could not be built (no compiler): ``BPE`` constructs but raises on use.
  The benchmark reads the titles' token ids precomputed here with the project's tokenizer
  (``bench_training.py --write-tokens .device``) and never tokenizes on the GPU machine.
- ``torchvision``: ``torchvision.models.resnet.BasicBlock``, the same block as torchvision's (same layers
  and parameter names; the compact model's ``ConvTower`` is built of it), and an empty
  ``torchvision.transforms`` (ruclip's processor imports it; the benchmark builds no processor).
"""

from __future__ import annotations

import importlib.util
import sys
import types

from torch import nn


class _MissingBPE:
    """youtokentome.BPE stand-in: the benchmark only passes the BPE file along, never encodes with it."""

    def __init__(self, model: str, *args, **kwargs):
        self.model = model

    def __getattr__(self, name: str):
        raise RuntimeError(f"youtokentome is not installed here; BPE.{name} of {self.model} is unavailable")


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (He et al. 2016): two 3×3 convolutions with batch norm and a
    residual connection, ``downsample`` applied to the input when the shape changes."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def install_shims() -> list[str]:
    """Stand-ins for the missing modules listed in the module docstring; returns their names."""
    shimmed = []
    if importlib.util.find_spec("youtokentome") is None:
        _module("youtokentome", BPE=_MissingBPE, OutputType=types.SimpleNamespace(ID=0, SUBWORD=1))
        shimmed.append("youtokentome")
    if importlib.util.find_spec("torchvision") is None:
        vision = _module("torchvision", __path__=[])
        vision.transforms = _module("torchvision.transforms")
        vision.models = _module("torchvision.models", __path__=[])
        vision.models.resnet = _module("torchvision.models.resnet", BasicBlock=BasicBlock)
        shimmed.append("torchvision")
    return shimmed


if __name__ == "__main__":
    shimmed = install_shims()
    if shimmed and "--run-once" not in sys.argv:
        print(f"import shims (benchmark driver only): {', '.join(shimmed)}", flush=True)
    import bench_training  # after the shims: it imports ruclip and the project

    sys.exit(bench_training.main(sys.argv[1:]))
