"""ONNX export of the two towers, int8 quantization, and the torch↔ONNX parity check.

The exported folder is self-contained for inference without torch: ``image.onnx`` (uint8 NHWC images in),
``text.onnx`` (token ids in, dynamic batch and sequence length), their dynamically quantized
``*.int8.onnx`` variants, the image tower statically quantized for OpenVINO when calibration photos are
given (``image.int8-static.xml`` and ``.bin``), ``bpe.model``, ``config.json``, the lexical projection
(``lexical.joblib``) when the model has one, and ``manifest.json`` (model version, sizes, fusion weights).
The parity check writes ``parity.json`` beside them, with the passing variants' speed on the CPU it ran on;
:func:`mm_pipeline.inference.encoders.resolve_variant` is the one way to pick a variant that passed it. The
file names are :mod:`mm_pipeline.model.files`; the towers' files, variants and sessions are those of
:mod:`mm_pipeline.inference.encoders`, which reads the folder
(:data:`~mm_pipeline.inference.encoders.VARIANT_FILES`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from ruclip.model import CLIP
from torch import nn
from torch.export import Dim

from mm_pipeline.inference.encoders import (
    BASE_FUSION_WEIGHTS,
    ONNX_VARIANTS,
    cpu_signature,
    exported_variants,
    import_openvino,
    load_tower,
    read_manifest,
    runnable_variants,
    time_variants,
    tower_file,
)
from mm_pipeline.model.clip import ConvTower, ImageTower, TextTower
from mm_pipeline.model.device import cpu_fp32
from mm_pipeline.model.files import (
    BPE_FILE,
    CONFIG_FILE,
    LEXICAL_FILE,
    MANIFEST_FILE,
    PARITY_FILE,
    TRAINING_FILE,
    WEIGHTS_FILE,
)
from mm_pipeline.model.lexical import LexicalProjection
from mm_pipeline.prep.tokens import BOS_ID, EOS_ID, trim_padding
from mm_pipeline.storage import atomic_dir, write_json

PARITY_FLOORS = {"fp32": 0.9999, "int8": 0.995, "bf16": 0.995, "int8-static": 0.995}
CALIBRATION_BATCH = 16  # photos per calibration batch fed to NNCF


def weights_version(model_dir: Path) -> str:
    digest = hashlib.sha256()
    with open(model_dir / WEIGHTS_FILE, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _export(module: nn.Module, example: torch.Tensor, name: str, dims: dict, target: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            module.eval(),
            (example,),
            dynamo=True,
            input_names=[name],
            output_names=["features"],
            dynamic_shapes=(dims,),
            verbose=False,
        )
    program.save(str(target), external_data=False)


def quantize_image_static(clip: CLIP, onnx_dir: Path, calibration_images: np.ndarray) -> Path:
    """Quantize the fp32 image tower in ``onnx_dir`` to int8 with NNCF's post-training quantization (Nagel et
    al. 2021's recipe as NNCF implements it: min-max ranges of activations on the calibration photos,
    per-channel symmetric weights, asymmetric activations, fast bias correction; for a ViT also SmoothQuant,
    Xiao et al. 2023) and save it as OpenVINO IR (``image.int8-static.xml`` and ``.bin``) in ``onnx_dir``.
    ``calibration_images``: uint8 ``[N, R, R, 3]`` training photos (never eval ones). Returns the ``.xml``
    path."""
    # heavy, imported only here; its torch backend's import warns that a CPU machine has no CUDA runtime
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf

    ov = import_openvino()
    batches = [
        calibration_images[s : s + CALIBRATION_BATCH]
        for s in range(0, len(calibration_images), CALIBRATION_BATCH)
    ]
    transformer = not isinstance(clip.visual, ConvTower)
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws its progress bars on stdout
        quantized = nncf.quantize(
            ov.Core().read_model(str(tower_file(onnx_dir, "image", "fp32"))),
            nncf.Dataset(batches),
            model_type=nncf.ModelType.TRANSFORMER if transformer else None,
            # asymmetric activations (the transformer type's default too): after a ReLU a symmetric range
            # spends half its levels on negatives; on the compact CNN min cosine to fp32 0.9958 -> 0.9964
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(batches),  # items of the dataset: batches of photos
        )
    target = tower_file(onnx_dir, "image", "int8-static")
    ov.save_model(quantized, str(target), compress_to_fp16=False)
    return target


@contextlib.contextmanager
def _quantizer_notes_to_debug():
    """Within: ONNX Runtime's quantizer's warnings (through the root logger: that the graph could be
    pre-processed, and that the uint8 image input is not quantized, which it is not meant to be) go to this
    module's debug log instead of the console; its errors stay where they were."""
    log = logging.getLogger(__name__)

    def divert(record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR and "onnxruntime" in record.pathname:
            log.debug("onnxruntime: %s", record.getMessage())
            return False
        return True

    root = logging.getLogger()
    root.addFilter(divert)
    try:
        yield
    finally:
        root.removeFilter(divert)


def export_towers(
    clip: CLIP,
    model_dir: Path,
    target: Path | str,
    text_module: nn.Module | None = None,
    calibration_images: np.ndarray | None = None,
) -> Path:
    """Export both towers and their int8 variants of ``clip`` loaded from ``model_dir`` into ``target``.

    Tracing always runs on the CPU in fp32: a model on a GPU or in another dtype is exported from a CPU fp32
    copy. ``calibration_images`` (uint8 ``[N, R, R, 3]`` training photos) add the ``int8-static`` image
    tower (:func:`quantize_image_static`); where NNCF or OpenVINO fails, the export goes on without it, the
    error logged and kept in the manifest (``int8_static_error``). ``text_module`` replaces the text tower
    (tests use it to plant a broken export).
    """
    clip = cpu_fp32(clip).eval()
    resolution = clip.visual.input_resolution
    images = torch.zeros((2, resolution, resolution, 3), dtype=torch.uint8)
    ids = torch.zeros((2, 8), dtype=torch.int64)
    ids[:, 0], ids[:, 1:5], ids[:, 5] = BOS_ID, 7, EOS_ID
    with atomic_dir(target) as tmp:
        _export(ImageTower(clip), images, "images", {0: Dim("batch")}, tower_file(tmp, "image", "fp32"))
        _export(
            text_module or TextTower(clip),
            ids,
            "input_ids",
            {0: Dim("batch"), 1: Dim("sequence", max=clip.context_length)},
            tower_file(tmp, "text", "fp32"),
        )
        with _quantizer_notes_to_debug():
            for tower in ("image", "text"):
                # 7-bit weights: CPUs without VNNI (AVX2) multiply u8 x s8 pairs into saturating int16; with
                # 8-bit weights ViT-B/32 image vectors drift to cosine 0.988 there, with 7 bits 0.9996
                quantize_dynamic(
                    tower_file(tmp, tower, "fp32"),
                    tower_file(tmp, tower, "int8"),
                    weight_type=QuantType.QInt8,
                    reduce_range=True,
                )
        calibrated, static_error = 0, None
        if calibration_images is not None and len(calibration_images):
            try:
                quantize_image_static(clip, tmp, calibration_images)
                calibrated = len(calibration_images)
            # an optional variant: whatever NNCF raises, the export serves fp32, int8 and bf16 without it
            except Exception as error:
                static_error = f"{type(error).__name__}: {error}"
                logging.getLogger(__name__).warning("int8-static left out of the export: %s", static_error)
        for name in (BPE_FILE, CONFIG_FILE, LEXICAL_FILE):
            if (model_dir / name).exists():
                shutil.copyfile(model_dir / name, tmp / name)
        training = model_dir / TRAINING_FILE
        fusion = json.loads(training.read_text()).get("fusion", {}) if training.exists() else {}
        manifest = {
            "model_version": weights_version(model_dir),
            "source_model_dir": str(model_dir),
            "image_resolution": resolution,
            "context_length": clip.context_length,
            "embed_dim": int(clip.text_projection.shape[1]),
            "fusion_weights": fusion.get("weights", BASE_FUSION_WEIGHTS),
            "calibration_photos": calibrated,  # 0: no int8-static tower
            **({"int8_static_error": static_error} if static_error else {}),
            "files": {
                p.name: p.stat().st_size
                for p in sorted(tmp.iterdir())
                if p.suffix in (".onnx", ".xml", ".bin")
            },
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return Path(target)


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@dataclass(frozen=True)
class ParityReport:
    rows: list[dict]  # one per (tower, variant): min_cosine, max_abs_diff, floor, passed, file_bytes

    @property
    def passed_variants(self) -> list[str]:
        return [v for v in self.checked_variants if all(r["passed"] for r in self.rows if r["variant"] == v)]

    @property
    def checked_variants(self) -> list[str]:
        """The variants compared, in ``ONNX_VARIANTS`` order (``bf16`` only where it runs, ``int8-static`` only
        where exported)."""
        return [v for v in ONNX_VARIANTS if any(r["variant"] == v for r in self.rows)]

    @property
    def passed(self) -> bool:
        return "fp32" in self.passed_variants

    def summary(self) -> dict[str, float]:
        """Per variant, the worst tower: ``min_cosine_<v>``, ``max_abs_diff_<v>``; and ``bytes_<v>`` of both files."""
        out = {}
        for variant in self.checked_variants:
            rows = [r for r in self.rows if r["variant"] == variant]
            out[f"min_cosine_{variant}"] = min(r["min_cosine"] for r in rows)
            out[f"max_abs_diff_{variant}"] = max(r["max_abs_diff"] for r in rows)
            out[f"bytes_{variant}"] = sum(r["file_bytes"] for r in rows)
        return out


def _parity_row(
    tower: str,
    variant: str,
    output: np.ndarray,
    reference: np.ndarray,
    floor: float,
    path: Path | None = None,
) -> dict:
    with np.errstate(invalid="ignore"):
        cosine = _row_cosine(output, reference)
    return {
        "tower": tower,
        "variant": variant,
        "min_cosine": float(cosine.min()),
        "max_abs_diff": float(np.abs(output - reference).max()),
        "floor": floor,
        "passed": bool(cosine.min() >= floor),
        # an OpenVINO IR's weights are the .bin beside its .xml
        "file_bytes": sum(f.stat().st_size for f in (path, path.with_suffix(".bin")) if f.exists())
        if path
        else 0,
    }


@torch.no_grad()
def check_parity(
    clip: CLIP,
    onnx_dir: Path,
    images: np.ndarray,
    ids: np.ndarray,
    texts: Sequence[str] = (),
    lexical: LexicalProjection | None = None,
    variants: Sequence[str] | None = None,
) -> ParityReport:
    """Compare the exported towers' features in each of ``variants`` (default: every variant the export has
    and this machine runs, :func:`~mm_pipeline.inference.encoders.runnable_variants`) with ruclip's own torch
    encoders on real products; a variant passes at cosine >= its ``PARITY_FLOORS`` entry on every row.

    Torch reads the full 77-token ids; the export reads them trimmed after the last EOS, as inference does. When
    the model has a ``lexical`` projection, the exported copy must give the same vectors for ``texts`` (the same
    file serves every variant; a missing copy fails them all). The torch reference runs on a CPU fp32 copy.
    """
    clip = cpu_fp32(clip)
    reference = {
        "image": ImageTower(clip.eval())(torch.from_numpy(images)).numpy(),
        "text": clip.encode_text(torch.from_numpy(ids)).numpy(),
    }
    inputs = {"image": images, "text": trim_padding(ids)}
    rows = []
    if variants is None:
        exported = exported_variants(onnx_dir)
        variants = [v for v in runnable_variants() if v in exported]
    for variant in variants:
        floor = PARITY_FLOORS[variant]
        for tower in ("image", "text"):
            output = load_tower(onnx_dir, tower, variant)(inputs[tower])
            path = tower_file(onnx_dir, tower, variant)
            rows.append(_parity_row(tower, variant, output, reference[tower], floor, path))
        if lexical is not None:
            path = onnx_dir / LEXICAL_FILE
            expected = lexical.transform(texts)
            # a missing copy compares as zero vectors: cosine NaN, which fails the floor
            exported = LexicalProjection.load(path).transform(texts) if path.exists() else 0 * expected
            present = path if path.exists() else None
            rows.append(_parity_row("lexical", variant, exported, expected, PARITY_FLOORS["fp32"], present))
    return ParityReport(rows)


def write_parity(
    report: ParityReport,
    onnx_dir: Path | str,
    timings: dict[str, float] | None = None,
    threads: int | None = None,
) -> Path:
    """Write ``parity.json``: the verdict, the passing variants, every row, and ``timing``: seconds per product
    of each passing variant (``timings``, else :func:`time_variants` with ``threads`` now) on this CPU
    (:func:`cpu_signature`), which ``MM_ONNX_VARIANT=auto`` reuses on CPUs with the same flags."""
    manifest = read_manifest(onnx_dir)
    if timings is None:
        timings = time_variants(onnx_dir, report.passed_variants, threads) if report.passed else {}
    payload = {
        "passed": report.passed,
        "passed_variants": report.passed_variants,
        "model_version": manifest["model_version"],
        "rows": report.rows,
        "timing": {"cpu": cpu_signature(), "seconds": timings},
    }
    return write_json(payload, Path(onnx_dir) / PARITY_FILE)
