"""The image tensor store is written in chunks: memory follows the chunk size, not the batch size."""

from __future__ import annotations

import tracemalloc

import numpy as np

from mm_pipeline.prep.images import open_tensor_store, write_tensor_store
from mm_pipeline_tests.conftest import write_jpeg

SIZE = 64


def peak_bytes_writing(files: list, target, chunk_size: int) -> int:
    tracemalloc.start()
    try:
        write_tensor_store(files, target, SIZE, chunk_size=chunk_size, workers=2)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_is_bounded_by_the_chunk_not_the_batch(tmp_path):
    files = [
        write_jpeg(tmp_path / "images" / f"{i}.jpg", colour=(i % 256, 90, 200 - i % 200), size=(48, 40))
        for i in range(1200)
    ]
    image_bytes = SIZE * SIZE * 3
    small = peak_bytes_writing(files[:300], tmp_path / "small.npy", chunk_size=32)
    large = peak_bytes_writing(files, tmp_path / "large.npy", chunk_size=32)
    assert large < 1200 * image_bytes / 4  # far below holding the batch in memory
    assert large < 2 * small + 32 * image_bytes  # 4x the images, about the same peak

    store = open_tensor_store(tmp_path / "large.npy")
    assert isinstance(store, np.memmap) and store.shape == (1200, SIZE, SIZE, 3)
    centre_red = store[[7, 200, 1100], SIZE // 2, SIZE // 2, 0].astype(int)
    assert np.abs(centre_red - [7, 200, 1100 % 256]).max() <= 4  # rows keep the input order
