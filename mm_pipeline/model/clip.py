"""ruCLIP models: pretrained folders, online download, a compact from-scratch variant, and the two towers.

Every model here is ``ruclip.model.CLIP``. Folders follow ruCLIP's layout (``config.json``, ``bpe.model``,
``pytorch_model.bin``) so ``CLIP.from_pretrained`` / ``RuCLIPProcessor.from_pretrained`` read them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import ruclip
import torch
from huggingface_hub import cached_download
from ruclip.model import CLIP
from ruclip.processor import RuCLIPProcessor
from torch import nn
from torchvision.models.resnet import BasicBlock

from mm_pipeline.inference.encoders import l2_normalize
from mm_pipeline.model.files import BPE_FILE, CONFIG_FILE, LEXICAL_FILE, TRAINING_FILE, WEIGHTS_FILE
from mm_pipeline.model.lexical import LexicalProjection
from mm_pipeline.prep.tokens import CONTEXT_LENGTH, EOS_ID, TextTokenizer, trim_padding
from mm_pipeline.storage import atomic_dir, pin

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MODEL_FILES = (CONFIG_FILE, BPE_FILE, WEIGHTS_FILE)  # what CLIP.from_pretrained reads; TRAINING_FILE is ours
DEFAULT_HF_ENDPOINT = "https://huggingface.co"

# Arguments of ruclip's CLIP constructor.
CLIP_ARGS = (
    "embed_dim",
    "image_resolution",
    "vision_layers",
    "vision_width",
    "vision_patch_size",
    "context_length",
    "vocab_size",
    "transformer_width",
    "transformer_heads",
    "transformer_layers",
)
# Small enough to train on a few thousand products in minutes on 2 CPU cores: ruclip's CLIP with its causal
# text transformer (EOS pooling) reading the first 40 tokens (title, brand and the start of the description)
# instead of 77, and a convolutional image tower (``ConvTower``, ``image_tower: "cnn"``) instead of the ViT,
# which learns less than raw pixels from a few thousand photos. ``vision_width`` is the tower's first width.
# 256-d towers whose image tower pools its last feature map on a 3×3 grid (``vision_grid``) instead of one
# average: product photos are centred, and where the parts of a silhouette lie says what it is. On
# flipkart1050 (two seeds, image-channel probe F1 category / sub_category) 128-d average pooling 0.453 /
# 0.350, 256-d 0.477 / 0.366, 256-d with the grid 0.484 / 0.384; the 24x24-pixel reference 0.480 / 0.363.
COMPACT_CONFIG = {
    "embed_dim": 256,
    "image_resolution": 96,
    "image_tower": "cnn",
    "vision_grid": 3,
    "vision_layers": 4,
    "vision_width": 32,
    "vision_patch_size": 16,
    "context_length": 40,
    "vocab_size": 6000,
    "transformer_width": 128,
    "transformer_heads": 2,
    "transformer_layers": 3,
}
# The real ruclip-vit-base-patch32-384 architecture (benchmarks use it with random weights).
VIT_B32_384_CONFIG = {
    "embed_dim": 512,
    "image_resolution": 384,
    "vision_layers": 12,
    "vision_width": 768,
    "vision_patch_size": 32,
    "context_length": CONTEXT_LENGTH,
    "vocab_size": 49408,
    "transformer_width": 512,
    "transformer_heads": 8,
    "transformer_layers": 12,
}


class ModelSourceError(RuntimeError):
    """The configured model cannot be loaded; the message says how to provide it."""


@dataclass(frozen=True)
class LoadedModel:
    clip: CLIP
    processor: RuCLIPProcessor
    tokenizer: TextTokenizer  # the processor's BPE and context length, without torch
    config: dict
    bpe_path: Path
    origin: str  # human-readable: where the weights came from
    lexical: LexicalProjection | None = None  # fitted by fine-tuning; pretrained folders have none


def context_length(
    ruclip_dir: Path | str | None, ruclip_name: str = "", downloads_dir: Path | str | None = None
) -> int:
    """Tokens the base model's text tower reads, decided without loading or downloading it, from the sources
    the base model is chosen from and in the same order (:func:`mm_pipeline.model.recipe.build_base_model`):

    1. ``ruclip_dir`` (``MM_RUCLIP_DIR``): its ``config.json``;
    2. ``ruclip_name`` (``MM_RUCLIP_NAME``): the ``config.json`` of its folder under ``downloads_dir``
       (``Layout.downloads_dir``, where :func:`download` keeps it) when it is already there, else ruCLIP's
       standard ``CONTEXT_LENGTH`` (77, the text length of every published ruCLIP: the model job has not
       downloaded it yet, and reading the hub here would make ingest depend on the network);
    3. neither: the compact model's (``COMPACT_CONFIG``).
    """
    if ruclip_dir:
        return int(json.loads((Path(ruclip_dir) / CONFIG_FILE).read_text())["context_length"])
    if ruclip_name:
        config = download_folder(downloads_dir, ruclip_name) / CONFIG_FILE if downloads_dir else None
        if config is None or not config.is_file():
            return CONTEXT_LENGTH
        return int(json.loads(config.read_text())["context_length"])
    return COMPACT_CONFIG["context_length"]


class ConvTower(nn.Module):
    """A narrow ResNet image tower built without weights: float ``[N, 3, S, S]`` → ``[N, embed_dim]``.

    Stem (3×3 conv, stride 2, batch norm, ReLU, 3×3 max pool, stride 2), then ``layers`` torchvision
    ``BasicBlock``s whose width doubles from ``width`` at every stride-2 block after the first, average
    pooling of the last feature map over a ``grid`` × ``grid`` grid of cells (1: global average pooling)
    and a linear projection of the cells side by side (He et al. 2016, "Deep residual learning for image
    recognition"). It keeps ruclip's ``visual`` interface: ``conv1`` (whose dtype ``CLIP.dtype`` reads) and
    ``input_resolution``.
    """

    def __init__(self, input_resolution: int, width: int, layers: int, output_dim: int, grid: int = 1):
        super().__init__()
        self.grid = grid
        self.input_resolution = input_resolution
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.stem = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks, channels = [], width
        for index in range(layers):
            out, stride = (width, 1) if index == 0 else (channels * 2, 2)
            downsample = None
            if stride != 1 or out != channels:
                downsample = nn.Sequential(
                    nn.Conv2d(channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
                )
            blocks.append(BasicBlock(channels, out, stride, downsample))
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Linear(channels * grid * grid, output_dim)
        # channels-last (NHWC) convolutions: oneDNN's fast layout on CPUs, a third less time per training step
        self.to(memory_format=torch.channels_last)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        features = self.blocks(self.stem(self.conv1(pixels)))
        if self.grid == 1:
            return self.proj(features.mean(dim=(2, 3)))
        pooled = nn.functional.adaptive_avg_pool2d(features, self.grid)
        return self.proj(pooled.flatten(1))


def build_clip(config: dict) -> CLIP:
    """ruclip's CLIP; with ``image_tower: "cnn"`` its ViT is replaced by a ``ConvTower``."""
    args = {k: config[k] for k in CLIP_ARGS}
    cnn = config.get("image_tower", "vit") == "cnn"
    if cnn:  # the constructor's ViT is replaced at once: make it an empty one
        args |= {"vision_layers": 0, "vision_width": 64}
    clip = CLIP(**args)
    if cnn:
        clip.visual = ConvTower(
            config["image_resolution"],
            config["vision_width"],
            config["vision_layers"],
            config["embed_dim"],
            config.get("vision_grid", 1),
        )
    return clip


CONSISTENCY_PROBE = "Проверка токенизатора: Платье ZARINA 42 размер"


def load_folder(folder: Path | str) -> LoadedModel:
    """Load a ruCLIP folder with ruclip's own ``CLIP.from_pretrained`` and ``RuCLIPProcessor.from_pretrained``.

    Our torch-free tokenizer shares the processor's BPE and context length; a probe text must get the same
    ids from both, and the BPE must fit the model's token embedding.
    """
    source, folder = Path(folder), pin(folder)  # every file from one version of the folder
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelSourceError(
            f"ruCLIP folder {folder} lacks {', '.join(missing)}; it needs {', '.join(MODEL_FILES)} "
            "(e.g. the files of sberbank-ai/ruclip-vit-base-patch32-384)"
        )
    config = json.loads((folder / CONFIG_FILE).read_text())
    processor = RuCLIPProcessor.from_pretrained(str(folder))
    tokenizer = TextTokenizer.from_processor(processor, folder / BPE_FILE)
    if tokenizer.vocab_size > config["vocab_size"]:
        raise ModelSourceError(
            f"{folder}: {BPE_FILE} has {tokenizer.vocab_size} tokens but {CONFIG_FILE}'s vocab_size is "
            f"{config['vocab_size']}; the BPE does not belong to these weights"
        )
    reference = processor(text=[CONSISTENCY_PROBE])["input_ids"].numpy()
    if not np.array_equal(tokenizer.encode([CONSISTENCY_PROBE]), reference):
        raise ModelSourceError(f"{folder}: our tokenizer disagrees with ruclip's RuCLIPProcessor")
    if config.get("image_tower", "vit") == "vit":
        clip = CLIP.from_pretrained(str(folder)).eval()
    else:  # ruclip's loader only builds the ViT
        clip = build_clip(config)
        clip.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        clip.eval()
    lexical = LexicalProjection.load(folder / LEXICAL_FILE) if (folder / LEXICAL_FILE).exists() else None
    return LoadedModel(
        clip, processor, tokenizer, config, folder / BPE_FILE, f"pretrained from {source}", lexical
    )


def _probe_address(endpoint: str) -> tuple[str, int]:
    """Host and port a download would connect to first: the HTTPS proxy when one is set, else the hub."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlsplit(proxy or endpoint)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def download_folder(cache_dir: Path | str, name: str) -> Path:
    """Where :func:`download` keeps the ruCLIP model ``name``."""
    return Path(cache_dir) / name


def download(name: str, cache_dir: Path, timeout: float = 5.0) -> LoadedModel:
    """A ``ruclip.MODELS`` folder: from ``cache_dir/name`` when complete, else downloaded from the hub.

    The hub is ``HF_ENDPOINT`` (default https://huggingface.co), reached through ``HTTPS_PROXY`` when set;
    when it cannot be reached within ``timeout`` this fails at once with instructions.
    """
    if name not in ruclip.MODELS:
        raise ModelSourceError(f"unknown ruCLIP model {name!r}; known: {', '.join(ruclip.MODELS)}")
    folder = download_folder(cache_dir, name)
    if not all((folder / f).is_file() for f in MODEL_FILES):
        endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_HF_ENDPOINT).rstrip("/")
        try:
            socket.create_connection(_probe_address(endpoint), timeout=timeout).close()
        except OSError as exc:
            raise ModelSourceError(
                f"cannot download {name}: the model hub {endpoint} is unreachable ({exc}). Download the "
                f"folder ({', '.join(MODEL_FILES)}) on a connected machine and set MM_RUCLIP_DIR to it."
            ) from None
        # what ruclip.load does, with the configured endpoint (huggingface-hub 0.2.1 ignores HF_ENDPOINT)
        repo = ruclip.MODELS[name]["repo_id"]
        for filename in MODEL_FILES:
            cached_download(
                f"{endpoint}/{repo}/resolve/main/{filename}", cache_dir=str(folder), force_filename=filename
            )
    loaded = load_folder(folder)
    return dataclasses.replace(loaded, origin=f"pretrained {name} from {folder}")


def save_folder(
    clip: CLIP,
    config: dict,
    bpe_path: Path,
    target: Path | str,
    extra: dict | None = None,
    lexical: LexicalProjection | None = None,
) -> Path:
    """Write a ruCLIP-style folder atomically (``extra`` goes to ``training.json``, ``lexical`` beside it)."""
    with atomic_dir(target) as tmp:
        if lexical is not None:
            lexical.save(tmp / LEXICAL_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps({**config, "mean": CLIP_MEAN, "std": CLIP_STD}, indent=2))
        shutil.copyfile(bpe_path, tmp / BPE_FILE)
        torch.save(clip.state_dict(), tmp / WEIGHTS_FILE)
        if extra is not None:
            (tmp / TRAINING_FILE).write_text(json.dumps(extra, indent=2, ensure_ascii=False, default=str))
    return Path(target)


class ImageTower(nn.Module):
    """uint8 ``[N, H, W, 3]`` images → image features; CLIP normalization lives inside the graph."""

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
        return self.clip.encode_image(pixels)


class TextTower(nn.Module):
    """int64 ids ``[N, L]`` (L ≤ context) → text features, pooled at the EOS token as ruCLIP does.

    ``CLIP.encode_text`` hard-codes the 77-token positional embedding and causal mask; this tower slices
    both to L, which is exact because attention is causal and pooling reads the EOS position.
    """

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def eos_positions(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids == EOS_ID).to(torch.int32).argmax(dim=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        clip = self.clip
        length = ids.shape[1]
        x = clip.token_embedding(ids) + clip.positional_embedding[:length]
        mask = torch.full((length, length), float("-inf"), device=ids.device).triu(1)
        x = x.permute(1, 0, 2)
        for block in clip.transformer.resblocks:
            normed = block.ln_1(x)
            x = x + block.attn(normed, normed, normed, need_weights=False, attn_mask=mask)[0]
            x = x + block.mlp(block.ln_2(x))
        x = clip.ln_final(x.permute(1, 0, 2))
        pooled = x[torch.arange(x.shape[0]), self.eos_positions(ids)]
        return pooled @ clip.text_projection


@torch.no_grad()
def encode_products(
    clip: CLIP, tokenizer: TextTokenizer, texts: list[str], images: np.ndarray
) -> dict[str, np.ndarray]:
    """float32 unit ``image`` and ``text`` vectors (torch towers) of products given as texts and uint8
    ``[N, H, W, 3]`` images."""
    image = ImageTower(clip.eval())(torch.from_numpy(images)).numpy()
    text = TextTower(clip.eval())(torch.from_numpy(trim_padding(tokenizer.encode(texts)))).numpy()
    return {"image": l2_normalize(image), "text": l2_normalize(text)}
