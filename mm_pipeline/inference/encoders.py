"""ONNX Runtime encoders for product embeddings. No torch at run time: numpy, youtokentome, onnxruntime.

Channels: ``image`` and ``text`` (the ruCLIP towers) and ``lexical`` (LSA of the text,
:mod:`mm_pipeline.model.lexical`), each L2-normalized; the fused vector weighs them with the weights chosen
at fine-tuning (``fuse``, the one place that rule lives). Texts are sorted by token length and each batch is
trimmed after its longest EOS, which is exact for ruCLIP's causal text tower; image decoding for the next
chunk overlaps inference.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from mm_pipeline.model.lexical import LEXICAL_FILE, LexicalProjection
from mm_pipeline.prep.tokens import TextTokenizer, token_lengths, trim_padding
from mm_pipeline.storage import atomic_path, pin

CHANNELS = ("image", "text", "lexical")
VECTOR_COLUMNS = (*CHANNELS, "fused")
# the model before fine-tuning has no lexical channel: its two towers weigh the same
BASE_FUSION_WEIGHTS = {"image": 0.5, "text": 0.5}


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def fuse(parts: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """float32 ``[N, sum of channel dims]`` unit vectors: the channels named in ``weights`` (in ``CHANNELS``
    order), each L2-normalized and scaled by ``sqrt(weight / total weight)``, concatenated.

    The cosine of two fused vectors is then the weighted mean of their channels' cosines. A channel with
    weight 0 keeps its block (zeros), so the layout depends only on which channels the model has. Raises
    ``KeyError`` when a weighted channel is missing from ``parts``.
    """
    total = sum(weights.values())
    blocks = [
        l2_normalize(np.asarray(parts[c], dtype=np.float32)) * np.sqrt(weights[c] / total)
        for c in CHANNELS
        if c in weights
    ]
    return l2_normalize(np.concatenate(blocks, axis=1)).astype(np.float32)


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


PARITY_FILE = "parity.json"


class ParityError(RuntimeError):
    """No ONNX variant of an export may be used; the message says why."""


def choose_variant(onnx_dir: Path | str, wanted: str = "int8") -> str:
    """The variant of the export in ``onnx_dir`` to run: ``wanted`` if it passed parity, else fp32 if that did.

    Raises :class:`ParityError` when the check has not run on this export or failed: an unchecked variant is
    never used.
    """
    onnx_dir = pin(onnx_dir)  # one export version, even while a new one is being written
    if not (onnx_dir / PARITY_FILE).exists():
        raise ParityError(
            f"{onnx_dir} has no parity report; materialize onnx_model with its onnx_parity check"
        )
    parity = json.loads((onnx_dir / PARITY_FILE).read_text())
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    if parity["model_version"] != manifest["model_version"]:
        raise ParityError(f"{onnx_dir}: the parity report is for another export; rerun onnx_parity")
    if not parity["passed"]:
        raise ParityError(
            f"{onnx_dir} failed onnx_parity (passed variants: {', '.join(parity['passed_variants']) or 'none'}); "
            "fix and re-export the model"
        )
    return wanted if wanted in parity["passed_variants"] else "fp32"


class OnnxEncoders:
    """The channels of one exported model folder: image and text towers in the chosen variant (``fp32`` or
    ``int8``), the lexical projection when the export has one, and the fusion weights of its manifest."""

    def __init__(self, onnx_dir: Path | str, variant: str = "int8", threads: int | None = None):
        self.onnx_dir = pin(onnx_dir)  # one export version for every file read below
        suffix = {"fp32": "", "int8": ".int8"}[variant]
        self.variant = variant
        self.manifest = json.loads((self.onnx_dir / "manifest.json").read_text())
        threads = threads or os.cpu_count() or 1
        self.image_session = _session(self.onnx_dir / f"image{suffix}.onnx", threads)
        self.text_session = _session(self.onnx_dir / f"text{suffix}.onnx", threads)
        self.tokenizer = TextTokenizer(self.onnx_dir / "bpe.model", self.manifest["context_length"])
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
        return f"{self.manifest['model_version']}-{self.variant}"

    def encode_images(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        # measured on ViT-B/32-384 with 2 cores: batches of 16 run 15% faster than 32 in fp32, as fast in int8
        outputs = [
            self.image_session.run(None, {"images": np.ascontiguousarray(images[s : s + batch_size])})[0]
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
            result[index] = self.text_session.run(None, {"input_ids": trim_padding(ids[index])})[0]
        return result

    def encode(self, texts: Sequence[str], images: np.ndarray) -> dict[str, np.ndarray]:
        """Every vector column (``dims``) for products given as texts and uint8 ``[N, H, W, 3]`` images."""
        vectors = {
            "image": l2_normalize(self.encode_images(images)),
            "text": l2_normalize(self.encode_texts(texts)),
        }
        if self.lexical is not None:
            vectors["lexical"] = self.lexical.transform(texts)
        vectors["fused"] = fuse(vectors, self.fusion_weights)
        return vectors


@dataclass(frozen=True)
class EmbeddingStats:
    count: int
    dims: dict[str, int]
    seconds: float
    bytes_on_disk: int

    @property
    def products_per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


def _prefetched(
    loader: Callable[[int], np.ndarray], chunks: Sequence[int]
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, images)`` per chunk while the next chunk is loaded in a background thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(loader, chunks[0]) if chunks else None
        for position, start in enumerate(chunks):
            images = pending.result()
            if position + 1 < len(chunks):
                pending = pool.submit(loader, chunks[position + 1])
            yield start, images


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
    """
    started = time.perf_counter()
    total = len(nm)
    dims = encoders.dims
    schema = pa.schema(
        [
            ("nm", pa.int64()),
            ("model_version", pa.string()),
            *[(name, pa.list_(pa.float32(), width)) for name, width in dims.items()],
        ]
    )
    chunks = list(range(0, total, chunk_size))
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for start, images in _prefetched(lambda s: load_images(s, min(s + chunk_size, total)), chunks):
            stop = start + len(images)
            columns = encoders.encode(texts[start:stop], images)
            arrays = [pa.array(nm[start:stop], pa.int64()), pa.array([encoders.model_version] * len(images))]
            for name in dims:
                values = np.ascontiguousarray(columns[name], dtype=np.float32)
                arrays.append(
                    pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
                )
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            if progress:
                progress(stop, total)
        if not chunks:
            writer.write_table(schema.empty_table())
    return EmbeddingStats(
        total,
        dims,
        time.perf_counter() - started,
        Path(target).stat().st_size,
    )


def read_vectors(path: Path | str, column: str = "fused") -> tuple[np.ndarray, np.ndarray]:
    """``(nm, vectors)`` from an embeddings parquet file, without per-row Python objects."""
    table = pq.read_table(path, columns=["nm", column])
    values = table.column(column).combine_chunks()
    width = values.type.list_size
    flat = values.flatten().to_numpy(zero_copy_only=False)
    return table.column("nm").to_numpy(), flat.reshape(-1, width).astype(np.float32, copy=False)
