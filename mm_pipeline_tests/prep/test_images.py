"""Image decoding, letterboxing and the chunked tensor store."""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from mm_pipeline.prep.images import (
    ImageProblem,
    check_image,
    letterbox,
    load_letterboxed,
    open_tensor_store,
    write_tensor_store,
)


def write_forged_png(path, width: int, height: int):
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")
    )
    return path


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


@pytest.mark.parametrize("side", [10_000, 50_000])  # Pillow would warn at 100 Mpx and refuse at 2.5 Gpx
def test_bomb_headers_hit_our_pixel_limit_first(tmp_path, side):
    bomb = write_forged_png(tmp_path / "bomb.png", side, side)
    pillow_cap = Image.MAX_IMAGE_PIXELS
    expected = f"image too large: bomb.png is {side}x{side}, over the 40000000 pixel limit"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail here
        with pytest.raises(ImageProblem) as checked:
            check_image(bomb)
        with pytest.raises(ImageProblem) as loaded:
            load_letterboxed(bomb, 16)
    assert str(checked.value) == str(loaded.value) == expected
    assert pillow_cap == Image.MAX_IMAGE_PIXELS  # Pillow's own cap is left as it was


def test_load_letterboxed_and_the_store_honour_max_pixels(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (100, 50), (0, 0, 255)).save(path)
    assert load_letterboxed(path, 16, max_pixels=5000).shape == (16, 16, 3)
    with pytest.raises(ImageProblem, match="image too large: wide.png is 100x50, over the 4999 pixel limit"):
        load_letterboxed(path, 16, max_pixels=4999)
    with pytest.raises(ImageProblem, match="over the 4999 pixel limit"):
        write_tensor_store([path], tmp_path / "store.npy", 16, max_pixels=4999)
    assert not (tmp_path / "store.npy").exists()
