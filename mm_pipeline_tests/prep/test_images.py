"""Image decoding, letterboxing and the chunked tensor store."""

import numpy as np
from PIL import Image

from mm_pipeline.prep.images import letterbox, load_letterboxed, open_tensor_store, write_tensor_store


def test_letterbox_keeps_aspect_and_pads_white():
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    array = letterbox(image, 64)
    assert array.shape == (64, 64, 3) and array.dtype == np.uint8
    assert tuple(array[32, 32]) == (255, 0, 0)  # content centred
    assert tuple(array[2, 32]) == (255, 255, 255)  # padding above and below


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (120, 40), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    image.save(tmp_path / "r.jpg", exif=exif)
    array = load_letterboxed(tmp_path / "r.jpg", 60)
    # displayed image is tall: blue column in the middle, white padding left and right
    assert array[30, 30, 2] > 200 and array[30, 30, 0] < 60
    assert array[30, 2].min() > 240


def test_modes_become_rgb(tmp_path):
    Image.new("RGBA", (30, 30), (0, 255, 0, 0)).save(tmp_path / "alpha.png")
    Image.new("CMYK", (30, 30), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.full((30, 30), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    Image.new("P", (30, 30), 3).save(tmp_path / "palette.gif")
    transparent = load_letterboxed(tmp_path / "alpha.png", 16)
    assert transparent.min() > 250  # fully transparent green composited on white
    cmyk = load_letterboxed(tmp_path / "cmyk.jpg", 16)
    assert cmyk[8, 8, 0] > 200 and cmyk[8, 8, 1] < 60  # CMYK (0, 255, 255, 0) is red
    assert load_letterboxed(tmp_path / "deep.png", 16)[8, 8].min() > 250
    assert load_letterboxed(tmp_path / "palette.gif", 16).shape == (16, 16, 3)


def test_tensor_store_in_chunks(tmp_path):
    files = []
    for i in range(7):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (40, 20 + i), (i * 30, 0, 0)).save(path)
        files.append(path)
    calls = []
    stats = write_tensor_store(
        files, tmp_path / "store.npy", 24, chunk_size=3, progress=lambda d, t: calls.append(d)
    )
    store = open_tensor_store(tmp_path / "store.npy")
    assert store.shape == (7, 24, 24, 3) and isinstance(store, np.memmap)
    assert calls == [3, 6, 7] and stats.count == 7
    assert abs(int(store[5, 12, 12, 0]) - 150) < 8
    assert not list(tmp_path.glob(".*.tmp"))
