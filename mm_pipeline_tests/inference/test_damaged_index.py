"""A damaged similarity index makes ``mm-pipeline similar`` print one line naming the file, the problem and
how to rebuild it, never a faiss traceback or a bare ``AssertionError`` (issue 16, item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_pipeline.cli import main as cli_main
from mm_pipeline.evaluation.catalogue_index import write_index
from mm_pipeline.evaluation.similarity import IndexFileError, SimilarityIndex, build_index
from mm_pipeline.layout import Layout
from mm_pipeline.storage import pin

NM = np.arange(100, 120)
REBUILD = "rebuild it by materializing the similarity_index asset"


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write_store(root: Path, index_dim: int = 16, embeddings_dim: int = 16) -> Path:
    """Embeddings of 20 products and an index over them, as similarity_index leaves them; the index file."""
    layout = Layout(root)
    fused = unit_rows(len(NM), embeddings_dim)
    layout.embeddings("b0").parent.mkdir(parents=True, exist_ok=True)
    columns = {
        "nm": pa.array(NM),
        "fused": pa.FixedSizeListArray.from_arrays(pa.array(fused.reshape(-1)), embeddings_dim),
    }
    pq.write_table(pa.table(columns), layout.embeddings("b0"))
    indexed = fused if index_dim == embeddings_dim else unit_rows(len(NM), index_dim, seed=1)
    write_index(layout, pd.DataFrame({"nm": NM, "title": [f"товар {i}" for i in NM], "batch": "b0"}), indexed)
    return pin(layout.index_dir) / layout.index_file.name


def similar_fails(root: Path, capsys) -> str:
    """Run ``similar``; it must exit 1 with exactly one stderr line and print nothing on stdout."""
    assert cli_main(["similar", "--nm", "100", "--k", "3", "--data-dir", str(root)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("error: ") and "Traceback" not in line and "AssertionError" not in line
    assert REBUILD in line
    return line


def metadata_of(index_file: Path) -> dict:
    return json.loads(index_file.with_name(index_file.name + ".json").read_text())


def write_metadata(index_file: Path, metadata: dict) -> None:
    index_file.with_name(index_file.name + ".json").write_text(json.dumps(metadata))


def test_an_intact_index_still_answers(tmp_path, capsys):
    write_store(tmp_path)
    assert cli_main(["similar", "--nm", "100", "--k", "3", "--data-dir", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4


def test_truncated_index(tmp_path, capsys):
    index_file = write_store(tmp_path)
    data = index_file.read_bytes()
    index_file.write_bytes(data[: len(data) // 2])
    line = similar_fails(tmp_path, capsys)
    assert f"{index_file}: truncated: {len(data) // 2} bytes, its metadata says {len(data)}" in line


def test_truncated_index_with_metadata_from_before_sizes_were_recorded(tmp_path, capsys):
    index_file = write_store(tmp_path)
    write_metadata(
        index_file, {k: v for k, v in metadata_of(index_file).items() if k not in ("bytes", "faiss_version")}
    )
    data = index_file.read_bytes()
    index_file.write_bytes(data[: len(data) - 100])
    line = similar_fails(tmp_path, capsys)
    assert f"{index_file}: truncated or corrupt (faiss read " in line


def test_empty_index_file(tmp_path, capsys):
    index_file = write_store(tmp_path)
    index_file.write_bytes(b"")
    assert f"{index_file}: empty file" in similar_fails(tmp_path, capsys)


def test_index_from_another_faiss_version(tmp_path, capsys):
    index_file = write_store(tmp_path)
    data = index_file.read_bytes()
    assert data[:4] == b"IxM2"  # IndexIDMap2's tag; a faiss that writes another layout uses another tag
    index_file.write_bytes(b"IxM9" + data[4:])
    write_metadata(index_file, {**metadata_of(index_file), "faiss_version": "9.0.0"})
    line = similar_fails(tmp_path, capsys)
    assert f"{index_file}: not an index faiss {faiss.__version__} can read" in line
    assert "written by faiss 9.0.0" in line and "'IxM9'" in line


def test_git_lfs_pointer_in_place_of_the_index(tmp_path, capsys):
    index_file = write_store(tmp_path)
    size = index_file.stat().st_size
    index_file.write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{'ab' * 32}\nsize {size}\n"
    )
    line = similar_fails(tmp_path, capsys)
    assert f"{index_file}: a Git LFS pointer (" in line and "git lfs pull" in line


def test_index_of_another_dimension_than_the_embeddings(tmp_path, capsys):
    index_file = write_store(tmp_path, index_dim=8, embeddings_dim=16)
    line = similar_fails(tmp_path, capsys)
    assert f"{index_file}: has dimension 8, the query vectors 16" in line


def test_index_of_another_dimension_than_its_metadata(tmp_path, capsys):
    index_file = write_store(tmp_path)
    other = tmp_path / "other.faiss"
    build_index(unit_rows(len(NM), 8), NM).save(other)
    index_file.write_bytes(other.read_bytes())
    write_metadata(index_file, {**metadata_of(index_file), "bytes": other.stat().st_size})
    line = similar_fails(tmp_path, capsys)
    assert f"{index_file}: holds 20 vectors of dimension 8, its metadata says 20 of 16" in line


@pytest.mark.parametrize("content", [None, "{not json", '{"kind": "flat"}'])
def test_missing_or_damaged_metadata(tmp_path, capsys, content):
    index_file = write_store(tmp_path)
    metadata_file = index_file.with_name(index_file.name + ".json")
    if content is None:
        metadata_file.unlink()
    else:
        metadata_file.write_text(content)
    line = similar_fails(tmp_path, capsys)
    assert f"{metadata_file}: " in line
    assert ("missing" in line) if content is None else ("unreadable metadata" in line)


def test_load_and_search_raise_one_line_errors(tmp_path):
    index_file = write_store(tmp_path)
    index = SimilarityIndex.load(index_file)
    assert index.path == index_file and index.index.d == 16
    with pytest.raises(IndexFileError) as raised:
        index.search(unit_rows(1, 4), 3)
    assert raised.value.path == index_file and "\n" not in str(raised.value)
    index_file.write_bytes(index_file.read_bytes()[:10])
    with pytest.raises(IndexFileError, match="truncated") as raised:
        SimilarityIndex.load(index_file)
    assert "\n" not in str(raised.value)


def test_k_beyond_the_index_lists_every_other_product(tmp_path, capsys):
    write_store(tmp_path)
    assert cli_main(["similar", "--nm", "100", "--k", str(10**12), "--data-dir", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(NM)  # the header and 19 neighbours
