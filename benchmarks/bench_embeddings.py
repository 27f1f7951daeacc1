"""Embedding throughput: the original project's path versus ours, measured side by side in one run.

    python benchmarks/bench_embeddings.py [--n 256] [--quick]

Model: the real ruclip-vit-base-patch32-384 architecture (random weights unless MM_RUCLIP_DIR is set;
speed does not depend on weight values). Inputs: real Flipkart products (JPEGs + titles) from
../shared/data/flipkart1050. Every path starts from the same JPEG files and titles, decode included.

(a) seed-style: torch eager + ruclip.Predictor, 6 prompt templates averaged, batch 10 (generate_embeddings.py)
(b) torch eager, one text per product, batch 32
(c) ours, ONNX Runtime fp32, length-sorted trimmed text, decode overlapped with inference
(d) ours, ONNX Runtime int8 (dynamic quantization)
(e) reference: torch bf16 autocast (where the CPU computes bf16 in hardware)
(f) ours, the fp32 export on OpenVINO in bf16 (the ``bf16`` variant, where the CPU computes bf16 in hardware)
(g) ours, the ``int8-static`` variant: the image tower statically quantized to int8 by NNCF at export
    (post-training, calibrated on 96 other Flipkart photos) on OpenVINO, the text tower as in (d)

The export goes through the parity check and its timing as ``onnx_parity`` does (on the first 16 products),
and the table marks the variant ``MM_ONNX_VARIANT=auto`` (the default) picks from that timing on this CPU.

Then what the lexical channel adds to embedding time on the compact model (the default without pretrained
weights): the embed path, decode included, timed with and without it on every Flipkart product.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from mm_pipeline.inference.encoders import (
    OnnxEncoders,
    cpu_signature,
    exported_variants,
    l2_normalize,
    read_vectors,
    resolve_variant,
    runnable_variants,
    write_embeddings,
)
from mm_pipeline.model.clip import (
    COMPACT_CONFIG,
    VIT_B32_384_CONFIG,
    ImageTower,
    build_clip,
    load_folder,
    save_folder,
)
from mm_pipeline.model.device import cpu_has_native_bf16
from mm_pipeline.model.export import check_parity, export_towers, write_parity
from mm_pipeline.model.lexical import LexicalProjection
from mm_pipeline.prep.images import load_letterboxed
from mm_pipeline.prep.tokens import TextTokenizer, train_bpe

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flipkart1050"
PARITY_PRODUCTS = 16


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_folder(work: Path, titles: list[str]) -> Path:
    if os.environ.get("MM_RUCLIP_DIR"):
        return Path(os.environ["MM_RUCLIP_DIR"])
    bpe = train_bpe(titles * 3, work / "bpe" / "bpe.model", vocab_size=2000)
    config = dict(VIT_B32_384_CONFIG)  # vocab stays 49408: embedding size as in the real model
    torch.manual_seed(0)
    return save_folder(build_clip(config), config, bpe, work / "vit_b32_384")


def seed_style(clip, processor_dir: Path, files, titles):
    """generate_embeddings.py: PIL images through RuCLIPProcessor, Predictor with templates, batch 10."""
    from ruclip import Predictor, RuCLIPProcessor

    processor = RuCLIPProcessor.from_pretrained(str(processor_dir))
    predictor = Predictor(clip, processor, "cpu", bs=10, quiet=True)
    with torch.no_grad():
        images = predictor.get_image_latents([Image.open(f) for f in files])
        texts = predictor.get_text_latents(titles)
    return images.numpy(), texts.numpy()


def torch_eager(clip, tokenizer: TextTokenizer, files, titles, size: int, bf16: bool = False):
    tower = ImageTower(clip).eval()
    images, texts = [], []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(files), 32):
            batch = np.stack([load_letterboxed(f, size) for f in files[start : start + 32]])
            images.append(tower(torch.from_numpy(batch)).float())
            ids = torch.from_numpy(tokenizer.encode(titles[start : start + 32]))
            texts.append(clip.encode_text(ids).float())
    return l2_normalize(torch.cat(images).numpy()), l2_normalize(torch.cat(texts).numpy())


def ours(onnx_dir: Path, variant: str, files, titles, work: Path):
    """The embed path with ``variant``'s towers: ``(image, text)`` vectors."""
    out = work / f"{variant}.parquet"
    embed_seconds(OnnxEncoders(onnx_dir, variant), files, titles, out, chunk_size=64)
    return read_vectors(out, "image")[1], read_vectors(out, "text")[1]


CALIBRATION_PHOTOS = 96  # for the int8-static image tower, photos beyond the timed ones


def profile(clip, tokenizer: TextTokenizer, onnx_dir: Path, files, titles, size: int) -> pd.DataFrame:
    """Where the time goes: each phase of paths (b) and (d) timed alone, in seconds per 100 products."""

    def timed(run) -> tuple[float, object]:
        started = time.perf_counter()
        value = run()
        return (time.perf_counter() - started) * 100 / len(files), value

    decode, images = timed(lambda: np.stack([load_letterboxed(f, size) for f in files]))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        decode_parallel, _ = timed(lambda: list(pool.map(lambda f: load_letterboxed(f, size), files)))
    tower = ImageTower(clip).eval()
    ids = tokenizer.encode(titles)
    with torch.no_grad():
        torch_image, _ = timed(
            lambda: [tower(torch.from_numpy(images[s : s + 32])) for s in range(0, len(files), 32)]
        )
        torch_text, _ = timed(
            lambda: [clip.encode_text(torch.from_numpy(ids[s : s + 32])) for s in range(0, len(files), 32)]
        )
    encoders = OnnxEncoders(onnx_dir, "int8")
    ort_image, _ = timed(lambda: encoders.encode_images(images))
    ort_text, _ = timed(lambda: encoders.encode_ids(ids))
    tokenize, _ = timed(lambda: tokenizer.encode(titles))
    rows = [
        ("decode + letterbox JPEG, 1 thread", decode, decode),
        (f"decode + letterbox JPEG, {os.cpu_count()} threads", decode_parallel, decode_parallel),
        ("tokenize titles", tokenize, tokenize),
        ("image tower", torch_image, ort_image),
        ("text tower (torch: 77 tokens; ORT: sorted + trimmed)", torch_text, ort_text),
    ]
    return pd.DataFrame(rows, columns=["phase", "(b) torch fp32 s/100", "(d) ORT int8 s/100"])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((l2_normalize(a) * l2_normalize(b)).sum(axis=1).mean())


EMBED_CHUNK = 256  # the default of ``mm-pipeline embed --chunk-size``


def embed_seconds(
    encoders: OnnxEncoders, files: list[str], texts: list[str], out: Path, chunk_size: int = EMBED_CHUNK
) -> float:
    """Wall seconds of what ``mm-pipeline embed`` does with ``encoders``: JPEG decode on a thread pool
    overlapped with the towers, the vector columns and the parquet write (:func:`write_embeddings`, chunks
    of the CLI's default size unless ``chunk_size`` says otherwise)."""
    size = encoders.image_size
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:

        def load(start, stop):
            return np.stack(list(pool.map(lambda f: load_letterboxed(f, size), files[start:stop])))

        started = time.perf_counter()
        write_embeddings(encoders, np.arange(len(files)), texts, load, out, chunk_size=chunk_size)
        return time.perf_counter() - started


# what fine-tuning chose in one run on the 10,000-product sample (image 0.1, text 0.2 in another): the lexical
# block is fused, as in a trained model
TRAINED_FUSION_WEIGHTS = {"image": 0.2, "text": 0.1, "lexical": 0.7}


def lexical_share(work: Path, products: pd.DataFrame, files: list[str], rounds: int = 9) -> pd.DataFrame:
    """What the lexical channel adds to embedding with the compact model (random weights; the default without
    pretrained ruCLIP), projection fitted on the products' texts and fused with ``TRAINED_FUSION_WEIGHTS``.

    The embed path (:func:`embed_seconds`, ORT int8) runs with the lexical channel and without it (no
    projection, image and text fused alone) once per round, in alternating order; a round's ratio is
    with / without. On a 2-core machine a single run's wall time varies by ~10%, about the size of the
    effect, so the table gives the median ratio over ``rounds`` rounds (``lexical adds``), the standard error
    of the mean ratio and the best-of ratio; and the projection alone. Seconds per 100 products."""
    texts = (products["title"] + ". " + products["description"].fillna("")).tolist()
    bpe = train_bpe(texts, work / "compact_bpe" / "bpe.model", vocab_size=2000)
    config = {**COMPACT_CONFIG, "vocab_size": TextTokenizer(bpe).vocab_size}
    torch.manual_seed(0)
    folder = save_folder(
        build_clip(config),
        config,
        bpe,
        work / "compact",
        extra={"fusion": {"weights": TRAINED_FUSION_WEIGHTS}},
        lexical=LexicalProjection.fit(texts),
    )
    onnx_dir = export_towers(load_folder(folder).clip, folder, work / "compact_onnx")
    with_lexical, without_lexical = OnnxEncoders(onnx_dir, "int8"), OnnxEncoders(onnx_dir, "int8")
    without_lexical.lexical = None
    without_lexical.fusion_weights = {c: w for c, w in TRAINED_FUSION_WEIGHTS.items() if c != "lexical"}
    per_100 = 100 / len(files)
    embed_seconds(with_lexical, files, texts, work / "lexical_share.parquet")  # warm-up: page cache, arenas
    seconds: dict[str, list[float]] = {"with": [], "without": []}
    for round_ in range(rounds):
        order = (("with", with_lexical), ("without", without_lexical))
        for name, encoders in order if round_ % 2 == 0 else order[::-1]:
            seconds[name].append(embed_seconds(encoders, files, texts, work / "lexical_share.parquet"))
    ratios = np.array(seconds["with"]) / np.array(seconds["without"])
    alone = []
    for _ in range(3):
        started = time.perf_counter()
        with_lexical.lexical.transform(texts)
        alone.append((time.perf_counter() - started) * per_100)
    return pd.DataFrame(
        [
            {
                "embed s/100 (median)": np.median(seconds["with"]) * per_100,
                "without lexical s/100 (median)": np.median(seconds["without"]) * per_100,
                "lexical alone s/100": min(alone),
                "lexical adds (median of rounds)": np.median(ratios) - 1,
                "se": ratios.std(ddof=1) / np.sqrt(rounds),
                "best-of adds": min(seconds["with"]) / min(seconds["without"]) - 1,
                "rounds": rounds,
            }
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="64 products, for a smoke run")
    args = parser.parse_args()
    if not (SHARED / "products.parquet").exists():
        print(f"skipped: {SHARED} is not available")
        return 0
    n = 64 if args.quick else args.n
    products = pd.read_parquet(SHARED / "products.parquet").head(n)
    files = [str(SHARED / "images" / f"{nm}.jpg") for nm in products["nm"]]
    titles = products["title"].tolist()
    torch.set_num_threads(os.cpu_count() or 2)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = model_folder(work, titles)
        model = load_folder(folder)
        clip, size = model.clip.eval(), model.config["image_resolution"]
        tokenizer = model.tokenizer
        catalogue = pd.read_parquet(SHARED / "products.parquet")
        others = catalogue["nm"].iloc[n : n + CALIBRATION_PHOTOS]  # never the timed products
        calibration = (
            np.stack([load_letterboxed(str(SHARED / "images" / f"{nm}.jpg"), size) for nm in others])
            if len(others)
            else None
        )
        started = time.perf_counter()
        onnx_dir = export_towers(clip, folder, work / "onnx", calibration_images=calibration)
        print(
            f"ONNX export, int8 dynamic quantization and NNCF static int8 ({len(others)} calibration photos): "
            f"{time.perf_counter() - started:.0f} s (one-off)",
            file=sys.stderr,
        )

        sample = files[:PARITY_PRODUCTS]
        parity = check_parity(
            clip,
            onnx_dir,
            np.stack([load_letterboxed(f, size) for f in sample]),
            tokenizer.encode(titles[:PARITY_PRODUCTS]),
        )
        write_parity(parity, onnx_dir)
        choice = resolve_variant(onnx_dir, "auto")
        print(f"MM_ONNX_VARIANT=auto: {choice.variant} ({choice.reason})", file=sys.stderr)
        onnx_paths = {
            "fp32": "(c) ours: ORT fp32, trimmed text",
            "int8": "(d) ours: ORT int8, trimmed text",
            "bf16": "(f) ours: OpenVINO bf16, trimmed text",
            "int8-static": "(g) ours: OpenVINO int8 static image (NNCF), ORT int8 text",
        }
        onnx_paths = {v: name for v, name in onnx_paths.items() if v in exported_variants(onnx_dir)}
        onnx_paths = {v: name for v, name in onnx_paths.items() if v in runnable_variants()}
        paths = {
            "(a) seed: torch + Predictor, 6 templates, bs 10": lambda: seed_style(
                clip, folder, files, titles
            ),
            "(b) torch eager, 1 text": lambda: torch_eager(clip, tokenizer, files, titles, size),
            **{
                name + (" [auto]" if variant == choice.variant else ""): (
                    lambda variant=variant: ours(onnx_dir, variant, files, titles, work)
                )
                for variant, name in onnx_paths.items()
            },
        }
        if cpu_has_native_bf16():
            paths["(e) torch bf16 autocast"] = lambda: torch_eager(
                clip, tokenizer, files, titles, size, bf16=True
            )
        else:
            print("(e) torch bf16 autocast: skipped, this CPU has no AVX512-BF16/AMX", file=sys.stderr)
        results, outputs = [], {}
        for name, run in paths.items():
            started = time.perf_counter()
            outputs[name] = run()
            seconds = time.perf_counter() - started
            results.append(
                {
                    "path": name,
                    "products_per_s": n / seconds,
                    "seconds": seconds,
                    "peak_rss_mb": peak_rss_mb(),
                }
            )
            print(f"{name}: {n / seconds:.1f} products/s", file=sys.stderr)
        phases = profile(clip, tokenizer, onnx_dir, files, titles, size)
        # every product, so the embed path runs in chunks as the CLI makes them
        lexical = lexical_share(
            work, catalogue, [str(SHARED / "images" / f"{nm}.jpg") for nm in catalogue["nm"]]
        )
    reference = outputs["(b) torch eager, 1 text"]
    table = pd.DataFrame(results)
    rate = table.set_index("path")["products_per_s"]
    table["x_vs_a"] = table["products_per_s"] / rate.iloc[0]
    table["x_vs_b"] = table["products_per_s"] / rate.iloc[1]
    table["cos_image_vs_fp32_torch"] = [cosine(outputs[p][0], reference[0]) for p in table["path"]]
    table["cos_text_vs_fp32_torch"] = [cosine(outputs[p][1], reference[1]) for p in table["path"]]
    cpu = cpu_signature()
    print(
        f"\nEmbeddings, {n} real products, ruclip-vit-base-patch32-384 architecture, {os.cpu_count()} cores of "
        f"{cpu['model']} ({', '.join(cpu['flags']) or 'no AVX2'})"
    )
    print(
        "MM_ONNX_VARIANT=auto: the variants that passed parity (min cosine to fp32 torch, both towers), timed "
        "as onnx_parity times them, products/s: "
        + ", ".join(
            f"{v} {1 / s:.1f} (cos {parity.summary()[f'min_cosine_{v}']:.4f})"
            for v, s in choice.timings.items()
        )
        + f" -> {choice.variant}"
    )
    print("(a)'s text cosine differs by design: it averages 6 prompt templates. peak RSS is cumulative.")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    chosen = rate[[p for p in rate.index if p.endswith("[auto]")][0]]
    targets = [f"{chosen / rate.iloc[1]:.2f}x torch eager fp32 (target on AVX2-only CPUs: 2.5x)"]
    if "(e) torch bf16 autocast" in rate:
        targets.append(f"{chosen / rate['(e) torch bf16 autocast']:.2f}x torch bf16 autocast (on AMX: 1.5x)")
    print(f"auto's choice ({choice.variant}): " + "; ".join(targets))
    print("\nProfile: each phase alone, seconds per 100 products")
    print(phases.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(
        "\nLexical channel on the compact model: the embed path (decode, ORT int8 towers, vectors, parquet) "
        "with and without it, same products (target: adds <= 10%)"
    )
    print(lexical.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
