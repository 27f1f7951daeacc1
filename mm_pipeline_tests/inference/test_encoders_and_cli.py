"""ONNX inference: trimmed text equals the full 77-token path; the embed CLI without torch; similar CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from mm_pipeline.inference.encoders import (
    CHANNELS,
    PARITY_FILE,
    OnnxEncoders,
    clearly_fastest,
    cpu_signature,
    fuse,
    l2_normalize,
    read_vectors,
    resolve_variant,
    time_variants,
)
from mm_pipeline.model.clip import load_folder, save_folder
from mm_pipeline.model.export import check_parity, export_towers, write_parity
from mm_pipeline.model.files import LEXICAL_FILE
from mm_pipeline.model.lexical import LexicalProjection
from mm_pipeline_tests.conftest import dictionary_encoded_columns, good_rows, shared_set


def export_tiny(tiny_ruclip_dir, target):
    return export_towers(load_folder(tiny_ruclip_dir).clip, tiny_ruclip_dir, target)


LEXICAL_CORPUS = [
    f"{kind} {colour} {word}"
    for kind in ("Шапка вязаная", "Кепка", "Панама летняя", "Берет")
    for colour in ("черная", "синяя", "красная")
    for word in ("Ferz", "зимняя", "мужская")
]
FUSION = {"image": 0.3, "text": 0.3, "lexical": 0.4}


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, tiny_ruclip_dir):
    """An export with a lexical channel and its parity report, as fine-tuning, onnx_model and onnx_parity
    leave it."""
    tiny = load_folder(tiny_ruclip_dir)
    lexical = LexicalProjection.fit(LEXICAL_CORPUS)
    model_dir = save_folder(
        tiny.clip,
        tiny.config,
        tiny.bpe_path,
        tmp_path_factory.mktemp("m") / "model",
        extra={"fusion": {"weights": FUSION}},
        lexical=lexical,
    )
    model = load_folder(model_dir)
    folder = export_towers(model.clip, model_dir, model_dir.parent / "onnx")
    size = model.config["image_resolution"]
    images = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    texts = ["шапка вязаная", "кепка", "панама летняя", "берет"] * 2
    write_parity(
        check_parity(model.clip, folder, images, model.tokenizer.encode(texts), texts, lexical), folder
    )
    return folder


def test_trimmed_text_equals_full_context_on_real_titles(onnx_dir, tiny_ruclip_dir):
    titles = pd.read_parquet(shared_set("flipkart1050") / "products.parquet")["title"].head(200).tolist()
    encoders = OnnxEncoders(onnx_dir, "fp32")
    ids = encoders.tokenizer.encode(titles)
    trimmed = encoders.encode_ids(ids, batch_size=32)  # sorted by length, each batch cut after its last EOS
    full = np.concatenate([encoders.text_tower(ids[s : s + 32]) for s in range(0, 200, 32)])
    assert np.abs(trimmed - full).max() < 1e-5
    with torch.no_grad():
        reference = load_folder(tiny_ruclip_dir).clip.encode_text(torch.from_numpy(ids)).numpy()
    assert np.abs(trimmed - reference).max() < 1e-4


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter where importing torch is impossible."""
    code = (
        "import importlib.abc, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError(f'{name} is not installed here')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from mm_pipeline.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)


def test_embed_cli_on_russian_real_data_without_torch(tmp_path, onnx_dir):
    folder = shared_set("lamoda_hats")
    out = tmp_path / "hats.parquet"
    done = run_cli(
        "embed",
        "--products",
        str(folder / "products.parquet"),
        "--images",
        str(folder / "images"),
        "--model",
        str(onnx_dir),
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    nm, fused = read_vectors(out, "fused")
    assert list(nm) == list(pd.read_parquet(folder / "products.parquet")["nm"])
    lexical = read_vectors(out, "lexical")[1]
    dim = LexicalProjection.load(onnx_dir / LEXICAL_FILE).dim
    assert lexical.shape == (238, dim) and fused.shape == (238, 128 + dim) and np.isfinite(fused).all()
    assert np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)
    assert "238 products embedded" in done.stdout


def test_embed_cli_reports_bad_rows_and_keeps_them(tmp_path, catalogue, onnx_dir):
    rows = good_rows(4)
    rows.loc[1, "title"] = " "
    path, images = catalogue(rows, images_for=[1000, 1001, 1002])
    out = tmp_path / "emb.parquet"
    done = run_cli(
        "embed", "--products", str(path), "--images", str(images), "--model", str(onnx_dir), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert f"{path.name}: rejected nm=1001 (row 1): empty title" in done.stderr
    assert f"{path.name}: rejected nm=1003 (row 3): missing image" in done.stderr
    assert sorted(read_vectors(out, "fused")[0]) == [1000, 1002]
    rejected = pd.read_parquet(tmp_path / "emb.rejected.parquet")
    assert sorted(rejected["nm"]) == ["1001", "1003"]

    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"nope")
    failed = run_cli(
        "embed",
        "--products",
        str(broken),
        "--images",
        str(images),
        "--model",
        str(onnx_dir),
        "--out",
        str(out),
    )
    assert failed.returncode == 2 and "broken.parquet" in failed.stderr and "Traceback" not in failed.stderr


def test_embed_cli_refuses_an_export_without_a_parity_report(tmp_path, catalogue, tiny_ruclip_dir):
    path, images = catalogue(good_rows(2), images_for=[1000, 1001])
    unchecked = export_tiny(tiny_ruclip_dir, tmp_path / "onnx")
    args = ["--products", str(path), "--images", str(images), "--out", str(tmp_path / "e.parquet")]
    done = run_cli("embed", *args, "--model", str(unchecked))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no parity report" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "e.parquet").exists()


def test_embed_cli_checks_its_paths_and_model_before_writing_anything(tmp_path, catalogue, onnx_dir):
    """A missing images folder or model folder, an --out that is a folder or the products file itself: one
    line, exit 2, and no output file (the products file unchanged)."""
    path, images = catalogue(good_rows(2), images_for=[1000, 1001])
    products = path.read_bytes()
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = {
        "--images": (["--images", str(tmp_path / "absent")], tmp_path / "a.parquet"),
        "--model": (["--model", str(tmp_path / "no_model")], tmp_path / "b.parquet"),
        "is a directory": ([], folder),
        "would overwrite --products": ([], path),
        "emb.rejected.parquet is a directory": ([], tmp_path / "emb.parquet"),
    }
    (tmp_path / "emb.rejected.parquet").mkdir()
    for expected, (options, out) in cases.items():
        args = {"--images": str(images), "--model": str(onnx_dir)}
        args.update(dict(zip(options[::2], options[1::2], strict=True)))
        flat = [item for pair in args.items() for item in pair]
        done = run_cli("embed", "--products", str(path), *flat, "--out", str(out))
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert out == tmp_path / "emb.parquet" or not out.with_name(out.stem + ".rejected.parquet").exists()
    assert path.read_bytes() == products and not any(folder.iterdir())
    assert not any((tmp_path / "emb.rejected.parquet").iterdir()) and not (tmp_path / "emb.parquet").exists()


def test_embed_cli_takes_its_defaults_from_the_environment(
    tmp_path, catalogue, onnx_dir, monkeypatch, capsys
):
    """MM_ONNX_VARIANT picks the variant, MM_DATA_DIR the model folder (MM_DATA_DIR/store/onnx), MM_WORKERS
    the ONNX Runtime threads and MM_DEVICE its providers, as for the assets; an unknown value is refused in
    one line."""
    from mm_pipeline.cli import main as cli_main
    from mm_pipeline.inference import encoders as encoders_module

    opened = []
    original_init = encoders_module.OnnxEncoders.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        opened.append((kwargs.get("threads"), self.providers))

    monkeypatch.setattr(encoders_module.OnnxEncoders, "__init__", recording_init)

    path, images = catalogue(good_rows(2), images_for=[1000, 1001])
    data = tmp_path / "data"
    (data / "store").mkdir(parents=True)
    (data / "store" / "onnx").symlink_to(onnx_dir)
    monkeypatch.setenv("MM_DATA_DIR", str(data))
    monkeypatch.setenv("MM_ONNX_VARIANT", "fp32")
    args = ["embed", "--products", str(path), "--images", str(images), "--out", str(tmp_path / "e.parquet")]
    assert cli_main(args) == 0
    assert "ONNX variant fp32" in capsys.readouterr().err
    monkeypatch.setenv("MM_ONNX_VARIANT", "")  # empty is unset, as for the pipeline (compose passes it so)
    assert cli_main(args) == 0
    assert "fastest passing variant" in capsys.readouterr().err  # auto's reason
    monkeypatch.setenv("MM_ONNX_VARIANT", "bogus")
    assert cli_main(args) == 2
    assert "MM_ONNX_VARIANT='bogus'" in capsys.readouterr().err
    monkeypatch.setenv("MM_ONNX_VARIANT", "fp32")
    monkeypatch.setenv("MM_WORKERS", "1")
    monkeypatch.setenv("MM_DEVICE", "cpu")
    opened.clear()
    assert cli_main(args) == 0
    assert opened == [(1, ["CPUExecutionProvider"])]
    for variable, value in (("MM_WORKERS", "0"), ("MM_WORKERS", "two"), ("MM_DEVICE", "tpu")):
        monkeypatch.setenv(variable, value)
        assert cli_main(args) == 2
        assert f"{variable}={value!r}" in capsys.readouterr().err
        monkeypatch.setenv(variable, {"MM_WORKERS": "1", "MM_DEVICE": "cpu"}[variable])


def test_embed_cli_exits_1_when_every_row_was_rejected(tmp_path, catalogue, onnx_dir, capsys):
    from mm_pipeline.cli import main as cli_main

    path, images = catalogue(good_rows(2), images_for=[])
    out = tmp_path / "e.parquet"
    args = ["embed", "--products", str(path), "--images", str(images), "--model", str(onnx_dir)]
    assert cli_main([*args, "--out", str(out)]) == 1
    assert capsys.readouterr().err.endswith(f"error: {path}: every row was rejected\n")
    assert len(pd.read_parquet(tmp_path / "e.rejected.parquet")) == 2


@pytest.mark.parametrize("chunk_size", [1, 2, 5])
def test_embed_cli_writes_and_reports_every_product_whatever_the_chunk_size(
    tmp_path, catalogue, onnx_dir, capsys, chunk_size
):
    from mm_pipeline.cli import main as cli_main

    path, images = catalogue(good_rows(5), images_for=range(1000, 1005))
    out = tmp_path / "emb.parquet"
    args = ["--products", str(path), "--images", str(images), "--model", str(onnx_dir), "--out", str(out)]
    assert cli_main(["embed", *args, "--chunk-size", str(chunk_size)]) == 0
    assert list(read_vectors(out, "fused")[0]) == list(range(1000, 1005))
    assert "5 products embedded" in capsys.readouterr().out


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True])
def test_write_embeddings_refuses_a_chunk_size_that_writes_nothing(tmp_path, onnx_dir, chunk_size):
    from mm_pipeline.inference.encoders import write_embeddings

    encoders = OnnxEncoders(onnx_dir, "fp32")
    size = encoders.image_size
    images = np.zeros((3, size, size, 3), dtype=np.uint8)
    out = tmp_path / "e.parquet"
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        write_embeddings(
            encoders, np.arange(3), ["шапка"] * 3, lambda a, b: images[a:b], out, chunk_size=chunk_size
        )
    assert not out.exists()
    stats = write_embeddings(
        encoders, np.arange(3), ["шапка"] * 3, lambda a, b: images[a:b], out, chunk_size=2
    )
    assert stats.count == 3 and len(read_vectors(out, "fused")[0]) == 3


def test_embeddings_store_vectors_without_a_dictionary(tmp_path, onnx_dir):
    """Unit-vector floats almost never repeat: dictionary-encoding them (pyarrow's default) makes the file
    larger and its write several times slower, so only the model version is dictionary-encoded."""
    from mm_pipeline.inference.encoders import write_embeddings

    encoders = OnnxEncoders(onnx_dir, "fp32")
    size = encoders.image_size
    images = np.random.default_rng(5).integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    out = tmp_path / "e.parquet"
    write_embeddings(encoders, np.arange(6), ["шапка вязаная"] * 6, lambda a, b: images[a:b], out)
    assert all(read_vectors(out, name)[1].shape == (6, width) for name, width in encoders.dims.items())
    assert dictionary_encoded_columns(out) == {"model_version"}


def test_unknown_script_titles_are_not_paired_on_text_alone(tmp_path, onnx_dir):
    """Georgian, Armenian and Chinese titles in a catalogue whose BPE learned Russian: every such title gets
    about the same text vector, but their fused vectors (what the index, `similar` and duplicates read) leave
    it out: they are as close as their photos and their own words (the lexical channel's hashed terms, which
    three different scripts do not share), and the embeddings file counts them."""
    from mm_pipeline.inference.encoders import write_embeddings

    encoders = OnnxEncoders(onnx_dir, "fp32")
    texts = ["შავი მატყლის ქუდი", "Սև բրդյա գլխարկ", "黑色 羊毛 帽子", "Шапка вязаная черная"]
    size = encoders.image_size
    images = np.random.default_rng(3).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    assert encoders.tokenizer.mostly_unknown(texts).tolist() == [True, True, True, False]
    vectors = encoders.encode(texts, images)
    text_cos = vectors["text"][:3] @ vectors["text"][:3].T
    assert text_cos.min() > 0.99  # the fault: the text tower cannot tell them apart
    fused_cos = vectors["fused"][:3] @ vectors["fused"][:3].T
    image_cos = vectors["image"][:3] @ vectors["image"][:3].T
    lexical_cos = vectors["lexical"][:3] @ vectors["lexical"][:3].T
    assert not encoders.lexical.known(texts[:3]).any()  # no term a training text has
    assert np.abs(lexical_cos - np.eye(3)).max() < 0.2  # their own words, shared with none of the others
    weights = FUSION["image"] + FUSION["lexical"]
    expected = (FUSION["image"] * image_cos + FUSION["lexical"] * lexical_cos) / weights
    assert np.allclose(fused_cos, expected, atol=1e-5)  # the photos and the words speak, not the text tower
    assert np.allclose(np.linalg.norm(vectors["fused"], axis=1), 1, atol=1e-5)
    unchanged = fuse({k: vectors[k] for k in ("image", "text", "lexical")}, FUSION)
    assert np.allclose(vectors["fused"][3], unchanged[3], atol=1e-6)  # a Russian title keeps its vector

    stats = write_embeddings(encoders, np.arange(4), texts, lambda a, b: images[a:b], tmp_path / "e.parquet")
    assert stats.mostly_unknown_texts == 3


def test_queries_fill_both_tower_blocks_and_keep_what_the_model_reads(onnx_dir):
    encoders = OnnxEncoders(onnx_dir, "fp32", images=False)
    queries = ["Шапка вязаная черная", "შავი მატყლის ქუდი шапка", "кофта", "黑色 羊毛 帽子"]
    assert encoders.tokenizer.mostly_unknown(queries).tolist() == [False, True, False, True]
    text, lexical = l2_normalize(encoders.encode_texts(queries)), encoders.encode_lexical(queries)
    assert encoders.lexical.known(queries).tolist() == [True, True, False, False]
    assert lexical.any(axis=1).all()  # hashed: words no training text has are still read

    vectors = encoders.encode_queries(queries)
    image_block, text_block, lexical_block = np.split(
        vectors, np.cumsum([encoders.dims[c] for c in CHANNELS])[:-1], axis=1
    )
    # read whole: the text vector stands in for the photo, each block weighted as in a product's vector
    for block, expected, channel in [(image_block, text, "image"), (text_block, text, "text")]:
        assert np.allclose(block[0], np.sqrt(FUSION[channel]) * expected[0], atol=1e-6)
    assert np.allclose(lexical_block[0], np.sqrt(FUSION["lexical"]) * lexical[0], atol=1e-6)
    # tokens mostly unknown: its words alone (the CLI refuses one none of whose words a training text has)
    for row in (1, 3):
        assert not image_block[row].any() and not text_block[row].any()
        assert np.allclose(lexical_block[row], lexical[row], atol=1e-6)
    # words no training text has: weighted as any query's, their hashed terms in the lexical block
    for block, expected, channel in [(image_block, text, "image"), (text_block, text, "text")]:
        assert np.allclose(block[2], np.sqrt(FUSION[channel]) * expected[2], atol=1e-6)
    assert np.allclose(lexical_block[2], np.sqrt(FUSION["lexical"]) * lexical[2], atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    photo = np.random.default_rng(5).integers(
        0, 256, (1, encoders.image_size, encoders.image_size, 3), np.uint8
    )
    with pytest.raises(RuntimeError, match="image tower .* was not loaded"):
        encoders.encode_images(photo)

    # a photo: its image vector fills both tower blocks, the lexical block stays empty
    encoders = OnnxEncoders(onnx_dir, "fp32")
    image = l2_normalize(encoders.encode_images(photo))[0]
    vector = encoders.encode_image_queries(photo)[0]
    image_block, text_block, lexical_block = np.split(
        vector, np.cumsum([encoders.dims[c] for c in CHANNELS])[:-1]
    )
    assert np.allclose(image_block, image / np.sqrt(2), atol=1e-6)  # image and text weigh the same here
    assert np.allclose(text_block, image / np.sqrt(2), atol=1e-6) and not lexical_block.any()


def test_parity_report_records_the_passing_variants_speed_on_this_cpu(onnx_dir):
    """``auto`` on the CPU onnx_parity ran on reuses its timing, without timing again."""
    parity = json.loads((onnx_dir / PARITY_FILE).read_text())
    seconds = parity["timing"]["seconds"]
    assert parity["timing"]["cpu"] == cpu_signature() and set(seconds) == set(parity["passed_variants"])
    assert all(0 < s < 1 for s in seconds.values())
    choice = resolve_variant(onnx_dir, "auto")
    assert choice.timings == seconds and choice.variant == clearly_fastest(seconds, list(seconds))
    assert "timed by onnx_parity" in choice.reason
    measured = time_variants(onnx_dir, ["fp32", "int8"], threads=1, repeats=1)
    assert set(measured) == {"fp32", "int8"} and all(0 < s < 1 for s in measured.values())


@pytest.mark.parametrize("variant", ["int8", "fp32"])
def test_a_products_vector_does_not_depend_on_its_batch_mates(onnx_dir, variant):
    """Dynamic int8 quantization scales activations over the whole input: batched, a product's int8 vector moved
    with the other products of the call and the batch's padding. Each tower now gives one product the same
    vector alone, in any batch and at any batch size."""
    encoders = OnnxEncoders(onnx_dir, variant)
    size = encoders.image_size
    images = np.random.default_rng(1).integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    texts = ["шапка", "кепка синяя зимняя мужская Ferz", "панама", "берет красный", "шапка вязаная", "кепка"]
    together = encoders.encode(texts, images)
    for batch_size in (1, 4):
        assert np.allclose(
            encoders.encode_images(images, batch_size), encoders.encode_images(images), atol=1e-6
        )
    alone = [encoders.encode([text], image[None]) for text, image in zip(texts, images, strict=True)]
    for channel in ("image", "text", "fused"):
        singles = np.concatenate([vectors[channel] for vectors in alone])
        assert np.allclose(singles, together[channel], atol=1e-6), channel


def test_embed_and_validate_apply_the_image_size_limit_the_ingest_assets_apply(
    tmp_path, catalogue, onnx_dir, monkeypatch, capsys
):
    """MM_MAX_IMAGE_PIXELS bounds the photos ``embed`` and ``validate`` decode, as it bounds ingest's: before,
    both used the default limit, so a photo ingest rejected was embedded (and one it accepted under a raised
    limit was rejected). A value that is not a positive integer is refused in one line."""
    from mm_pipeline.cli import main as cli_main

    path, images = catalogue(good_rows(2), images_for=[1000, 1001])
    out = tmp_path / "e.parquet"
    embed = ["embed", "--products", str(path), "--images", str(images), "--model", str(onnx_dir)]
    embed += ["--out", str(out)]
    validate = ["validate", str(path), "--images", str(images)]
    assert cli_main(embed) == 0 and cli_main(validate) == 0
    capsys.readouterr()
    monkeypatch.setenv("MM_MAX_IMAGE_PIXELS", "100")
    assert cli_main(embed) == 1
    assert "over the 100 pixel limit" in capsys.readouterr().err
    assert len(pd.read_parquet(tmp_path / "e.rejected.parquet")) == 2
    assert cli_main(validate) == 1
    assert "over the 100 pixel limit" in capsys.readouterr().out
    monkeypatch.setenv("MM_MAX_IMAGE_PIXELS", "lots")
    for command in (embed, validate):
        assert cli_main(command) == 2
        assert "MM_MAX_IMAGE_PIXELS='lots' is not a positive integer" in capsys.readouterr().err
