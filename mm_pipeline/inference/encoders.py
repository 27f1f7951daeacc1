"""ONNX encoders for product embeddings. No torch at run time: numpy, youtokentome, onnxruntime (and OpenVINO
for the ``bf16`` and ``int8-static`` variants).

Channels: ``image`` and ``text`` (the ruCLIP towers) and ``lexical`` (LSA and a sparse random projection of
the text's TF-IDF, :mod:`mm_pipeline.model.lexical`), each L2-normalized; the fused vector weighs them with
the weights chosen at fine-tuning (``fuse``, the one place that rule lives). Texts are sorted by token length
and each batch is trimmed after its longest EOS, which is exact for ruCLIP's causal text tower; image decoding
for the next chunk overlaps inference.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf, NoSuchFile

from mm_pipeline.model.files import BPE_FILE, LEXICAL_FILE, MANIFEST_FILE, PARITY_FILE
from mm_pipeline.model.lexical import LexicalProjection
from mm_pipeline.prep.tokens import TextTokenizer, token_lengths, trim_padding
from mm_pipeline.storage import atomic_path, pin

CHANNELS = ("image", "text", "lexical")
# what ONNX Runtime raises for a model file it cannot load (not subclasses of RuntimeError)
ONNX_RUNTIME_ERRORS = (Fail, InvalidGraph, InvalidProtobuf, NoSuchFile)
VECTOR_COLUMNS = (*CHANNELS, "fused")
# the model before fine-tuning has no lexical channel: its two towers weigh the same
BASE_FUSION_WEIGHTS = {"image": 0.5, "text": 0.5}


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def fuse(
    parts: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    unusable: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """float32 ``[N, sum of channel dims]`` unit vectors: the channels named in ``weights`` (in ``CHANNELS``
    order), each L2-normalized and scaled by ``sqrt(weight / total weight)``, concatenated.

    The cosine of two fused vectors is then the weighted mean of their channels' cosines. A channel with
    weight 0 keeps its block (zeros), so the layout depends only on which channels the model has. Raises
    ``KeyError`` when a weighted channel is missing from ``parts``.

    ``unusable`` maps a channel to a bool ``[N]`` of rows whose vector in it says nothing (a text mostly of
    tokens the tokenizer does not know): those rows are fused from their other channels alone (zeros in that
    channel's block), so two of them are never close on that channel.
    """
    names = [c for c in CHANNELS if c in weights]
    normed = {c: l2_normalize(np.asarray(parts[c], dtype=np.float32)) for c in names}
    total = sum(weights.values())
    fused = l2_normalize(np.concatenate([normed[c] * np.sqrt(weights[c] / total) for c in names], axis=1))
    for channel, rows in (unusable or {}).items():
        rows = np.asarray(rows, dtype=bool)
        if channel in normed and rows.any():
            fused[rows] = _fuse_without(normed, weights, channel, rows, fused[rows])
    return fused.astype(np.float32)


def _fuse_without(
    normed: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    dropped: str,
    rows: np.ndarray,
    fallback: np.ndarray,
) -> np.ndarray:
    """Fused vectors of ``rows`` from every channel but ``dropped``, each row with the weights of the other
    channels it has a vector in, or equal weights where those weigh nothing (a weight-0 image channel is then
    the product's only evidence); ``fallback`` where no other channel has a vector."""
    names = list(normed)
    present = {c: np.linalg.norm(normed[c][rows], axis=1) > 0 for c in names if c != dropped}
    if not present:
        return fallback
    chosen = np.stack([np.where(present[c], float(weights[c]), 0.0) for c in present], axis=1)
    equal = np.stack([present[c].astype(np.float64) for c in present], axis=1)
    chosen = np.where(chosen.sum(axis=1, keepdims=True) > 0, chosen, equal)
    chosen = chosen / np.maximum(chosen.sum(axis=1, keepdims=True), 1e-12)
    columns = list(present)
    blocks = [
        np.zeros_like(normed[c][rows])
        if c == dropped
        else normed[c][rows] * np.sqrt(chosen[:, columns.index(c)])[:, None]
        for c in names
    ]
    vectors = np.concatenate(blocks, axis=1)
    found = np.linalg.norm(vectors, axis=1) > 0
    return np.where(found[:, None], l2_normalize(vectors), fallback)


CUDA_PROVIDER = "CUDAExecutionProvider"
# The variants of an export, in the order they are checked and reported, and the file each tower reads. The one
# list of variants (VARIANT_ORDER ranks the same names). ``fp32`` and ``int8`` (dynamic quantization) run on
# ONNX Runtime. ``bf16`` runs the fp32 files on OpenVINO in bf16 (``INFERENCE_PRECISION_HINT``), only on CPUs
# that compute bf16 in hardware (:func:`runnable_variants`): ONNX Runtime's CPU provider has no bf16 kernels.
# ``int8-static`` runs an image tower statically quantized to int8 by NNCF (calibrated on training photos at
# export, saved as OpenVINO IR) on OpenVINO, and the dynamically quantized text tower on ONNX Runtime: on the
# image tower, 3x ORT's fp32 on the compact CNN and 1.6x ORT's int8 on ViT-B/32-384 (Zen 4, ``make bench``).
VARIANT_FILES = {
    "fp32": {"image": "image.onnx", "text": "text.onnx"},
    "int8": {"image": "image.int8.onnx", "text": "text.int8.onnx"},
    "bf16": {"image": "image.onnx", "text": "text.onnx"},
    "int8-static": {"image": "image.int8-static.xml", "text": "text.int8.onnx"},
}
ONNX_VARIANTS = tuple(VARIANT_FILES)
OPENVINO_VARIANTS = frozenset({"bf16", "int8-static"})  # variants that need OpenVINO installed
OPENVINO_IR_SUFFIX = ".xml"  # an OpenVINO IR model file; its weights are the ``.bin`` of the same name
# Dynamically quantized towers: ONNX Runtime computes each activation's int8 scale over the whole input tensor,
# so in a batched call a product's vector depends on its batch-mates and, for texts, on the batch's padding
# (compact model, flipkart1050: int8 text vectors at cosine 0.997 between batchings, image 0.9995). They run
# one product per call, its text without padding, so a product's vector is the same in every batch.
PER_PRODUCT_FILES = frozenset({VARIANT_FILES["int8"]["image"], VARIANT_FILES["int8"]["text"]})
VARIANT_ORDER = ("int8", "int8-static", "fp32", "bf16")  # what MM_ONNX_VARIANT may force
# ``auto`` serves the most exact variant (this order) unless a less exact one is clearly faster: more than
# ``CLEAR_SPEEDUP`` times its products/s. Timed on a shared 2-core machine, fp32 and bf16 of one export swapped
# places from run to run (208.7 vs 237.7, then 218.6 vs 199.2 products/s), and so did the published vectors.
EXACTNESS_ORDER = ("fp32", "bf16", "int8-static", "int8")
CLEAR_SPEEDUP = 1.25
NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})  # /proc/cpuinfo flags of hardware bf16


def tower_file(folder: Path | str, tower: str, variant: str) -> Path:
    """The model file of ``tower`` (``image`` or ``text``) in ``variant`` in the export folder ``folder``: an
    ONNX file, or an OpenVINO IR ``.xml`` (weights in the ``.bin`` beside it)."""
    return Path(folder) / VARIANT_FILES[variant][tower]


def exported_variants(folder: Path | str) -> tuple[str, ...]:
    """The variants whose files are all in the export folder ``folder``, in ``ONNX_VARIANTS`` order
    (``int8-static`` is only there when the export was given calibration photos)."""
    return tuple(v for v in ONNX_VARIANTS if all(tower_file(folder, t, v).exists() for t in VARIANT_FILES[v]))


def read_manifest(onnx_dir: Path | str) -> dict:
    """The manifest of the export in ``onnx_dir`` (model version, sizes, fusion weights), as
    :func:`mm_pipeline.model.export.export_towers` wrote it."""
    return json.loads((Path(onnx_dir) / MANIFEST_FILE).read_text())


def variant_model_version(export_version: str, variant: str) -> str:
    """The ``model_version`` of the vectors an export's ``variant`` makes: ``<export version>-<variant>``."""
    return f"{export_version}-{variant}"


def export_variant_of(onnx_dir: Path | str, model_version: str) -> str:
    """The variant of the export in ``onnx_dir`` whose vectors carry ``model_version``
    (:func:`variant_model_version`). Raises ``ValueError`` naming both versions when this export did not make
    them (a retrain since, or vectors from another data dir)."""
    export_version = read_manifest(onnx_dir)["model_version"]
    for variant in ONNX_VARIANTS:
        if variant_model_version(export_version, variant) == model_version:
            return variant
    raise ValueError(
        f"the vectors are of model {model_version}, the export in {onnx_dir} is model {export_version}"
    )


def execution_providers(device: str = "cpu", available: Sequence[str] | None = None) -> list[str]:
    """ONNX Runtime providers for ``MM_DEVICE``: ``auto`` puts CUDA first when this onnxruntime build has it
    (``onnxruntime-gpu``, the ``gpu`` extra), ``cuda`` requires it, ``cpu`` never uses it. The CPU provider
    is always last, for nodes the GPU provider lacks.

    ``available`` defaults to ``onnxruntime.get_available_providers()``. Raises ``ValueError`` for an
    unknown device and ``RuntimeError`` for ``cuda`` without the CUDA provider.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"MM_DEVICE={device!r} is not one of auto, cpu, cuda")
    has_cuda = CUDA_PROVIDER in (ort.get_available_providers() if available is None else available)
    if device == "cuda" and not has_cuda:
        raise RuntimeError(
            "MM_DEVICE=cuda but onnxruntime has no CUDAExecutionProvider; install onnxruntime-gpu "
            "(pip install 'mm_pipeline[gpu]') or use MM_DEVICE=auto"
        )
    return (
        [CUDA_PROVIDER, "CPUExecutionProvider"] if device != "cpu" and has_cuda else ["CPUExecutionProvider"]
    )


def onnx_session(
    path: Path, threads: int = 0, providers: Sequence[str] = ("CPUExecutionProvider",)
) -> ort.InferenceSession:
    """An ONNX Runtime session of the model file ``path``: ``threads`` intra-op threads (0: ONNX Runtime's
    default, one per core), graph optimisations on, warnings off."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=list(providers))


Tower = Callable[[np.ndarray], np.ndarray]
"""One tower of an export: its single input (uint8 ``[N, R, R, 3]`` images or int64 ``[N, T]`` token ids) →
float32 ``[N, embed_dim]`` features. Safe to call from several threads."""


def import_openvino():
    """The ``openvino`` module, imported with its usage telemetry declined unless the user already chose:
    importing it sends usage events to Google Analytics unless ``~/intel/openvino_telemetry`` holds "0"
    (OpenVINO's ``opt_in_out --opt_out`` writes that file; ``opt_in_out --opt_in`` reverses it). A pipeline
    should not report home by default, so that file is written as "0" when it does not exist yet."""
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker

    checker = OptInChecker()
    if checker.consent_file_base_dir() and not os.path.exists(checker.consent_file()):
        checker.create_or_check_consent_dir()
        checker.update_result(ConsentCheckResult.DECLINED)
    import openvino

    return openvino


def load_tower(
    onnx_dir: Path | str,
    tower: str,
    variant: str,
    threads: int = 0,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> Tower:
    """``tower`` (``image`` or ``text``) of the export in ``onnx_dir`` in ``variant``, on ``threads`` threads
    (0: the runtime's default, one per core): an ONNX Runtime session (``providers``), or an OpenVINO CPU
    model, compiled in bf16 for ``bf16`` and in fp32 around the int8 layers of an OpenVINO IR file (OpenVINO
    is imported only then). A dynamically quantized tower (``PER_PRODUCT_FILES``) runs one product per call.
    Raises ONNX Runtime's ``NoSuchFile`` (OpenVINO's ``RuntimeError``) for a missing file."""
    path = tower_file(onnx_dir, tower, variant)
    if variant == "bf16" or path.suffix == OPENVINO_IR_SUFFIX:
        precision = "bf16" if variant == "bf16" else "f32"
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = import_openvino().Core().compile_model(str(path), "CPU", config)
        lock = threading.Lock()  # a compiled model's call reuses one inference request

        def run(x: np.ndarray) -> np.ndarray:
            with lock:
                return np.array(compiled(x)[0], dtype=np.float32)

        return run
    session = onnx_session(path, threads, providers)
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x})[0]

    if path.name not in PER_PRODUCT_FILES:
        return run

    def one_at_a_time(x: np.ndarray) -> np.ndarray:
        rows = [x[i : i + 1] for i in range(len(x))]
        if tower == "text":
            rows = [trim_padding(row) for row in rows]
        return np.concatenate([run(row) for row in rows]) if rows else run(x)

    return one_at_a_time


def openvino_installed() -> bool:
    """Whether the ``openvino`` package can be imported (it is not imported here)."""
    return importlib.util.find_spec("openvino") is not None


def runnable_variants(cpu: dict | None = None) -> tuple[str, ...]:
    """The variants this machine can run, in ``ONNX_VARIANTS`` order: ``fp32`` and ``int8`` everywhere;
    ``int8-static`` where OpenVINO is installed; ``bf16`` where besides the CPU (``cpu``, default
    :func:`cpu_signature`) has one of ``NATIVE_BF16_FLAGS`` (elsewhere bf16 is emulated, several times slower
    than fp32)."""
    cpu = cpu_signature() if cpu is None else cpu
    openvino = openvino_installed()
    runs = {"bf16": openvino and bool(NATIVE_BF16_FLAGS & set(cpu["flags"])), "int8-static": openvino}
    return tuple(v for v in ONNX_VARIANTS if runs.get(v, True))


AUTO = "auto"
# the instruction-set extensions ONNX Runtime's CPU kernels (MLAS) dispatch on: a ranking timed on a CPU
# with other ones is timed again
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
TIMING_BATCH = 8  # products per timed call: a fixed image batch and a fixed text batch
TIMING_REPEATS = 3


class ParityError(RuntimeError):
    """No ONNX variant of an export may be used; the message says why."""


def cpuinfo_fields(cpuinfo: str | Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first CPU's ``key: value`` lines of ``/proc/cpuinfo`` (a path, or its text); empty where the file is
    unreadable. The one reader of the CPU's model name and flags (variant timing, bf16 detection)."""
    if isinstance(cpuinfo, Path):
        try:
            cpuinfo = cpuinfo.read_text()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_signature(cpuinfo: str | None = None) -> dict:
    """``{"model": str, "flags": [str, ...]}``: this CPU's model name and which of ``CPU_FLAGS`` it has
    (from ``/proc/cpuinfo``, or ``cpuinfo`` when given; ``platform.processor()`` and no flags elsewhere)."""
    fields = cpuinfo_fields() if cpuinfo is None else cpuinfo_fields(cpuinfo)
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name") or platform.processor() or "unknown",
        "flags": [f for f in CPU_FLAGS if f in flags],
    }


def _timing_inputs(onnx_dir: Path, manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """Fixed uint8 ``[TIMING_BATCH, R, R, 3]`` images (seeded noise) and their token ids (product-like titles
    of growing length, trimmed as inference trims them)."""
    size = int(manifest["image_resolution"])
    images = np.random.default_rng(0).integers(0, 256, (TIMING_BATCH, size, size, 3), dtype=np.uint8)
    title = "Платье женское летнее хлопок синее размер 44 46 с коротким рукавом и карманами"
    texts = [title[: 20 + 8 * i] for i in range(TIMING_BATCH)]
    ids = TextTokenizer(onnx_dir / BPE_FILE, manifest["context_length"]).encode(texts)
    return images, trim_padding(ids)


def time_variants(
    onnx_dir: Path | str, variants: Sequence[str], threads: int | None = None, repeats: int = TIMING_REPEATS
) -> dict[str, float]:
    """Seconds per product (image tower + text tower, CPU provider, ``threads`` intra-op threads) of each of
    ``variants`` of the export in ``onnx_dir``, on a fixed batch of ``TIMING_BATCH`` products.

    The variants are timed in turns, ``repeats`` rounds after one warm-up call each, and each keeps its
    fastest round: on a shared machine a load spike lands on one round of one variant and is discarded.
    Takes a few seconds on a ViT-B/32-384 export with 2 cores. Raises ONNX Runtime's ``NoSuchFile`` for a
    variant whose files are missing.
    """
    onnx_dir = Path(onnx_dir)
    manifest = read_manifest(onnx_dir)
    images, ids = _timing_inputs(onnx_dir, manifest)
    threads = threads or os.cpu_count() or 1
    towers = {
        v: (load_tower(onnx_dir, "image", v, threads), load_tower(onnx_dir, "text", v, threads))
        for v in variants
    }

    def run(variant: str) -> float:
        image, text = towers[variant]
        started = time.perf_counter()
        image(images)
        text(ids)
        return time.perf_counter() - started

    for variant in variants:
        run(variant)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for variant in variants:
            best[variant] = min(best[variant], run(variant))
    return {v: best[v] / TIMING_BATCH for v in variants}


def clearly_fastest(timings: Mapping[str, float], allowed: Sequence[str]) -> str:
    """The variant ``auto`` serves among ``allowed``, given seconds per product in ``timings``: the first in
    ``EXACTNESS_ORDER`` whose time is within ``CLEAR_SPEEDUP`` times the fastest one's, so timing noise does not
    swap the variant (and the vectors) between runs. Raises ``ValueError`` when none of ``allowed`` was timed."""
    timed = [v for v in EXACTNESS_ORDER if v in allowed and v in timings]
    if not timed:
        raise ValueError(f"none of {list(allowed)} was timed ({sorted(timings)})")
    best = min(timings[v] for v in timed)
    return next(v for v in timed if timings[v] <= best * CLEAR_SPEEDUP)


@dataclass(frozen=True)
class VariantChoice:
    """Which variant runs and why: ``wanted`` (``MM_ONNX_VARIANT``), ``variant`` (what runs), ``reason`` (one
    line), ``timings`` (seconds per product per timed variant; empty unless ``auto`` ranked them) and
    ``cpu`` (:func:`cpu_signature` of the CPU the timings come from)."""

    variant: str
    wanted: str
    reason: str
    timings: dict[str, float] = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)

    def as_metadata(self) -> dict:
        return {
            "variant": self.variant,
            "wanted": self.wanted,
            "reason": self.reason,
            "products_per_s": {v: round(1 / s, 1) for v, s in self.timings.items() if s > 0},
            "cpu": self.cpu,
        }


_measured: dict[tuple, dict[str, float]] = {}  # per export version, CPU and threads: one timing per process


def resolve_variant(
    onnx_dir: Path | str,
    wanted: str = AUTO,
    threads: int | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    cpu: dict | None = None,
) -> VariantChoice:
    """The variant of the export in ``onnx_dir`` to run, among those that passed parity (``parity.json``).

    ``wanted`` one of ``VARIANT_ORDER``: that one if it passed parity, else fp32. ``auto``: the clearly fastest
    (:func:`clearly_fastest`) passing variant this CPU (``cpu``, default :func:`cpu_signature`) runs (:func:`runnable_variants`): the
    ranking ``onnx_parity`` timed when it ran on a CPU with the same ``CPU_FLAGS``, else one timed now with
    ``threads`` (:func:`time_variants`, once per process and export). With CUDA first in ``providers``,
    ``auto`` runs fp32 (int8 dynamic graphs fall back to the CPU there).

    Raises :class:`ParityError` when the check has not run on this export or failed: an unchecked variant is
    never used; ``ValueError`` for an unknown ``wanted`` or one this machine cannot run (``bf16`` without
    hardware bf16 or OpenVINO, ``int8-static`` without OpenVINO: served silently as fp32, it would mix
    model versions across machines).
    """
    if wanted not in (AUTO, *VARIANT_ORDER):
        raise ValueError(f"MM_ONNX_VARIANT={wanted!r} is not one of {', '.join((AUTO, *VARIANT_ORDER))}")
    cpu = cpu_signature() if cpu is None else cpu
    runnable = runnable_variants(cpu)
    if wanted not in (AUTO, *runnable):
        needs = "a CPU with AVX512-BF16 or AMX and OpenVINO installed" if wanted == "bf16" else "OpenVINO"
        raise ValueError(
            f"MM_ONNX_VARIANT={wanted} does not run on this machine: it needs {needs}; use auto, int8 or fp32"
        )
    onnx_dir = pin(onnx_dir)  # one export version, even while a new one is being written
    if not (onnx_dir / PARITY_FILE).exists():
        raise ParityError(
            f"{onnx_dir} has no parity report; materialize onnx_model with its onnx_parity check"
        )
    parity = json.loads((onnx_dir / PARITY_FILE).read_text())
    manifest = read_manifest(onnx_dir)
    if parity["model_version"] != manifest["model_version"]:
        raise ParityError(f"{onnx_dir}: the parity report is for another export; rerun onnx_parity")
    if not parity["passed"]:
        raise ParityError(
            f"{onnx_dir} failed onnx_parity (passed variants: {', '.join(parity['passed_variants']) or 'none'}); "
            "fix and re-export the model"
        )
    passed = [v for v in parity["passed_variants"] if v in runnable]
    if wanted != AUTO:
        if wanted in passed:
            return VariantChoice(wanted, wanted, "configured")
        checked = {row["variant"] for row in parity.get("rows", [])}
        if checked and wanted not in checked:
            return VariantChoice(
                "fp32",
                wanted,
                f"{wanted} was not checked: not in this export, or onnx_parity ran where it cannot run",
            )
        return VariantChoice("fp32", wanted, f"{wanted} failed parity")
    if providers and providers[0] == CUDA_PROVIDER:
        return VariantChoice("fp32", wanted, "CUDA provider: fp32 (int8 dynamic graphs fall back to the CPU)")
    recorded = parity.get("timing") or {}
    if recorded.get("cpu", {}).get("flags") == cpu["flags"] and set(passed) <= set(recorded["seconds"]):
        timings = {v: recorded["seconds"][v] for v in passed}
        reason = f"clearly fastest passing variant as timed by onnx_parity on {recorded['cpu']['model']}"
    else:
        key = (str(onnx_dir), manifest["model_version"], tuple(cpu["flags"]), threads, tuple(passed))
        if key not in _measured:
            _measured[key] = time_variants(onnx_dir, passed, threads)
        timings = _measured[key]
        reason = "clearly fastest passing variant timed now: this CPU's flags differ from those onnx_parity timed on"
    return VariantChoice(clearly_fastest(timings, passed), wanted, reason, timings, cpu)


def choose_variant(onnx_dir: Path | str, wanted: str = AUTO, threads: int | None = None) -> str:
    """The name of the variant :func:`resolve_variant` picks (CPU provider)."""
    return resolve_variant(onnx_dir, wanted, threads).variant


class OnnxEncoders:
    """The channels of one exported model folder: image and text towers in the chosen variant (one of
    ``ONNX_VARIANTS``; :func:`load_tower`), the lexical projection when the export has one, and the fusion
    weights of its manifest.

    ``device`` (``MM_DEVICE``) picks ONNX Runtime's providers (:func:`execution_providers`). ``images=False``
    leaves the image tower unloaded (text queries need none); :meth:`encode_images` then raises
    ``RuntimeError``."""

    def __init__(
        self,
        onnx_dir: Path | str,
        variant: str = "int8",
        threads: int | None = None,
        device: str = "cpu",
        images: bool = True,
    ):
        self.onnx_dir = pin(onnx_dir)  # one export version for every file read below
        self.variant = variant
        self.manifest = read_manifest(self.onnx_dir)
        threads = threads or os.cpu_count() or 1
        self.providers = execution_providers(device)
        self.image_tower = (
            load_tower(self.onnx_dir, "image", variant, threads, self.providers) if images else None
        )
        self.text_tower = load_tower(self.onnx_dir, "text", variant, threads, self.providers)
        self.tokenizer = TextTokenizer(self.onnx_dir / BPE_FILE, self.manifest["context_length"])
        lexical_path = self.onnx_dir / LEXICAL_FILE
        self.lexical = LexicalProjection.load(lexical_path) if lexical_path.exists() else None
        self.fusion_weights: dict[str, float] = self.manifest.get("fusion_weights", BASE_FUSION_WEIGHTS)

    @property
    def dims(self) -> dict[str, int]:
        """Width of every vector column this export writes."""
        dims = {"image": int(self.manifest["embed_dim"]), "text": int(self.manifest["embed_dim"])}
        if self.lexical is not None:
            dims["lexical"] = self.lexical.dim
        dims["fused"] = sum(dims[c] for c in CHANNELS if c in self.fusion_weights)
        return dims

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_resolution"])

    @property
    def model_version(self) -> str:
        return variant_model_version(self.manifest["model_version"], self.variant)

    def encode_images(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        if self.image_tower is None:
            raise RuntimeError(f"the image tower of {self.onnx_dir} was not loaded (images=False)")
        # measured on ViT-B/32-384 with 2 cores: batches of 16 run 15% faster than 32 in fp32, as fast in int8
        outputs = [
            self.image_tower(np.ascontiguousarray(images[s : s + batch_size]))
            for s in range(0, len(images), batch_size)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.manifest["embed_dim"]), np.float32)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        ids = self.tokenizer.encode(texts)
        return self.encode_ids(ids, batch_size)

    def encode_ids(self, ids: np.ndarray, batch_size: int = 64) -> np.ndarray:
        order = np.argsort(token_lengths(ids), kind="stable")
        result = np.zeros((len(ids), self.manifest["embed_dim"]), dtype=np.float32)
        for start in range(0, len(ids), batch_size):
            index = order[start : start + batch_size]
            result[index] = self.text_tower(trim_padding(ids[index]))
        return result

    def encode_lexical(self, texts: Sequence[str]) -> np.ndarray | None:
        """The lexical channel of ``texts`` (float32 ``[N, dim]``), ``None`` for an export without one."""
        return None if self.lexical is None else self.lexical.transform(texts)

    def encode_queries(self, texts: Sequence[str], lexical: np.ndarray | None = None) -> np.ndarray:
        """Search vectors of free-text queries (cleaned as product texts are) in the layout of the fused
        vector: float32 ``[N, dims["fused"]]``, unit rows.

        A query has no photo: its image block holds its text-tower vector, which the contrastive image↔text
        loss placed in the image tower's space (CLIP, Radford et al. 2021), so its cosine with a product
        (all of whose blocks are filled) is the fusion-weighted mean of the text↔image, text↔text and lexical
        cosines. A query mostly of tokens the tokenizer does not know keeps its lexical block alone, rescaled
        to unit length. Words no training text has (:meth:`~mm_pipeline.model.lexical.LexicalProjection.known`)
        still fill the lexical block with their hashed terms, which match products that have the same words. A
        model without a lexical channel gives a zero row for a query of unknown tokens.
        ``lexical``: their :meth:`encode_lexical` vectors when the caller made them already."""
        texts = list(texts)
        text = l2_normalize(self.encode_texts(texts))
        text[self.tokenizer.mostly_unknown(texts)] = 0.0
        return self._queries(text, self.encode_lexical(texts) if lexical is None else lexical)

    def encode_image_queries(self, images: np.ndarray) -> np.ndarray:
        """Search vectors of photos (uint8 ``[N, H, W, 3]``, letterboxed to ``image_size``) in the layout of
        the fused vector: float32 ``[N, dims["fused"]]``, unit rows, or zero rows where the fusion weighs only
        the lexical channel. The mirror of :meth:`encode_queries`: the image-tower vector fills both tower
        blocks (its text block matches product texts across modalities), the lexical block stays empty."""
        return self._queries(l2_normalize(self.encode_images(images)), None)

    def _queries(self, tower: np.ndarray, lexical: np.ndarray | None) -> np.ndarray:
        """Fused-layout rows from one tower vector per query, put in both tower blocks, and ``lexical``
        vectors (``None``: an empty lexical block)."""
        parts = {"image": tower, "text": tower}
        if self.lexical is not None:
            parts["lexical"] = (
                np.zeros((len(tower), self.lexical.dim), np.float32) if lexical is None else lexical
            )
        return fuse(parts, self.fusion_weights)

    def encode(
        self, texts: Sequence[str], images: np.ndarray, lexical: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Every vector column (``dims``) for products given as texts and uint8 ``[N, H, W, 3]`` images;
        ``lexical``: their :meth:`encode_lexical` vectors when the caller made them already."""
        vectors = {
            "image": l2_normalize(self.encode_images(images)),
            "text": l2_normalize(self.encode_texts(texts)),
        }
        if self.lexical is not None:
            vectors["lexical"] = self.encode_lexical(texts) if lexical is None else lexical
        # a text mostly of tokens the BPE does not know gives every such product about the same text vector:
        # its fused vector leaves the text channel out, so those products are never paired on text alone
        vectors["fused"] = fuse(
            vectors, self.fusion_weights, unusable={"text": self.tokenizer.mostly_unknown(texts)}
        )
        return vectors


@dataclass(frozen=True)
class EmbeddingStats:
    count: int
    dims: dict[str, int]
    seconds: float
    bytes_on_disk: int
    mostly_unknown_texts: int = 0  # products whose text is mostly tokens the BPE does not know

    @property
    def products_per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


Item = TypeVar("Item")


def prefetched(loader: Callable[[int], Item], keys: Sequence[int]) -> Iterator[tuple[int, Item]]:
    """Yield ``(key, loader(key))`` per key while the next key's item is loaded in a background thread (image
    chunks and their lexical vectors here, training batches on a GPU in
    :func:`mm_pipeline.model.train.batches_of`)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(loader, keys[0]) if keys else None
        for position, key in enumerate(keys):
            item = pending.result()
            if position + 1 < len(keys):
                pending = pool.submit(loader, keys[position + 1])
            yield key, item


def write_embeddings(
    encoders: OnnxEncoders,
    nm: np.ndarray,
    texts: Sequence[str],
    load_images: Callable[[int, int], np.ndarray],
    target: Path | str,
    chunk_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> EmbeddingStats:
    """Embed products chunk by chunk into a parquet file keyed by ``nm`` (one row group per chunk).

    ``load_images(start, stop)`` returns uint8 ``[stop - start, H, W, 3]`` images for those rows, so the
    caller decides whether they come from a memory-mapped tensor store or from JPEGs decoded on the fly.
    The next chunk's images and lexical vectors are made in a background thread while the towers encode
    this one: the lexical projection is Python and sparse algebra, which would otherwise add its whole time
    to the towers' (on 2 cores: 6% of embedding time inline, within noise of none overlapped). The returned
    count is the rows written; anything short of ``len(nm)`` raises instead of being reported.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    started = time.perf_counter()
    total = len(nm)
    written = 0
    dims = encoders.dims
    schema = pa.schema(
        [
            ("nm", pa.int64()),
            ("model_version", pa.string()),
            *[(name, pa.list_(pa.float32(), width)) for name, width in dims.items()],
        ]
    )
    chunks = list(range(0, total, chunk_size))
    # dictionary pages on unit-vector floats make the file larger and its write ~4x slower: only the version
    # gets one
    with (
        atomic_path(target) as tmp,
        pq.ParquetWriter(tmp, schema, use_dictionary=["model_version"]) as writer,
    ):

        def load_chunk(start: int) -> tuple[np.ndarray, np.ndarray | None]:
            stop = min(start + chunk_size, total)
            return load_images(start, stop), encoders.encode_lexical(texts[start:stop])

        for start, (images, lexical) in prefetched(load_chunk, chunks):
            stop = start + len(images)
            columns = encoders.encode(texts[start:stop], images, lexical)
            arrays = [pa.array(nm[start:stop], pa.int64()), pa.array([encoders.model_version] * len(images))]
            for name in dims:
                values = np.ascontiguousarray(columns[name], dtype=np.float32)
                arrays.append(
                    pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
                )
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            written += len(images)
            if progress:
                progress(stop, total)
        if not chunks:
            writer.write_table(schema.empty_table())
        if written != total:  # inside atomic_path: the partial file is discarded, the target untouched
            raise RuntimeError(f"wrote {written} of {total} embeddings rows")
    return EmbeddingStats(
        written,
        dims,
        time.perf_counter() - started,
        Path(target).stat().st_size,
        int(encoders.tokenizer.mostly_unknown(texts).sum()),
    )


def read_vectors(path: Path | str, column: str = "fused") -> tuple[np.ndarray, np.ndarray]:
    """``(nm, vectors)`` from an embeddings parquet file, without per-row Python objects."""
    table = pq.read_table(path, columns=["nm", column])
    values = table.column(column).combine_chunks()
    width = values.type.list_size
    flat = values.flatten().to_numpy(zero_copy_only=False)
    return table.column("nm").to_numpy(), flat.reshape(-1, width).astype(np.float32, copy=False)
