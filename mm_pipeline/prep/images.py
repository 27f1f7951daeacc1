"""Image decoding and the on-disk tensor store.

Every image becomes RGB (grayscale, palette, CMYK, 16-bit and alpha handled; alpha is composited on
white), is rotated by its EXIF orientation, resized keeping its aspect ratio and padded to a square. The
store is one ``uint8`` array ``[N, size, size, 3]`` in ``.npy`` format, written chunk by chunk through a
memory map, so memory stays bounded whatever the batch size and readers can memory-map it back.
"""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mm_pipeline.prep.text import shorten
from mm_pipeline.storage import write_npy_rows

MIN_IMAGE_SIDE = 8
PAD_COLOUR = (255, 255, 255)
DEFAULT_MAX_PIXELS = 40_000_000


class ImageProblem(Exception):
    """An image that cannot be used; the message says why (it becomes the row's reject reason)."""


_PILLOW_CAP_LOCK = threading.Lock()


def _open_header(path: Path) -> Image.Image:
    """``Image.open`` (header only) with Pillow's own pixel cap off, so ``max_pixels`` decides for any size.

    The cap is a module global: it is switched off under a lock and restored before returning.
    """
    with _PILLOW_CAP_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(path: Path, max_pixels: int, shown: str | None = None) -> Image.Image:
    name = shorten(shown or path.name)
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ImageProblem(f"missing image: {name} not found") from None
    except OSError as exc:  # e.g. a file name too long for the file system
        raise ImageProblem(f"unreadable image: {name} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(status.st_mode):
        raise ImageProblem(f"unreadable image: {name} is a directory")
    if status.st_size == 0:
        raise ImageProblem(f"unreadable image: {name} is an empty file")
    try:
        image = _open_header(path)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageProblem(f"unreadable image: {name} ({exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageProblem(f"image too large: {name} is {width}x{height}, over the {max_pixels} pixel limit")
    if min(width, height) < MIN_IMAGE_SIDE:
        image.close()
        raise ImageProblem(f"image too small: {name} is {width}x{height}, under {MIN_IMAGE_SIDE} px")
    return image


def check_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, shown: str | None = None) -> None:
    """Raise :class:`ImageProblem` unless ``path`` decodes fully into a usable image (header checked first);
    its message names the file as ``shown`` (e.g. its path in the images folder), by default by its name."""
    image = _open(path, max_pixels, shown)
    try:
        image.draft("RGB", (64, 64))  # full pass over the data at reduced scale: catches truncation cheaply
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"unreadable image: {shorten(shown or path.name)} ({exc})") from None
    finally:
        image.close()


def to_rgb(image: Image.Image) -> Image.Image:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = max(float(array.max()), 1.0)
        image = Image.fromarray(
            (array * (255.0 / (65535.0 if peak > 255 else 255.0))).clip(0, 255).astype(np.uint8)
        )
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (*PAD_COLOUR, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def letterbox(image: Image.Image, size: int) -> np.ndarray:
    """Aspect-preserving resize so the longer side is ``size``, centred on a square pad."""
    image.draft("RGB", (size, size))
    rgb = to_rgb(image)
    scale = size / max(rgb.size)
    new_size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    resized = rgb.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    canvas = Image.new("RGB", (size, size), PAD_COLOUR)
    canvas.paste(resized, ((size - new_size[0]) // 2, (size - new_size[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def load_letterboxed(path: Path | str, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Letterboxed RGB pixels; :class:`ImageProblem` when unusable or over ``max_pixels`` pixels."""
    with _open(Path(path), max_pixels) as image:
        try:
            return letterbox(image, size)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageProblem(f"unreadable image: {Path(path).name} ({exc})") from None


@dataclass(frozen=True)
class TensorStoreStats:
    count: int
    size: int
    bytes_on_disk: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


def write_tensor_store(
    image_files: Sequence[str | Path],
    target: Path | str,
    size: int,
    *,
    chunk_size: int = 256,
    workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[int, int], None] | None = None,
) -> TensorStoreStats:
    """Decode and letterbox ``image_files`` into ``target`` (.npy, uint8 ``[N, size, size, 3]``), atomically."""
    started = time.perf_counter()
    total = len(image_files)

    def chunks(pool: ThreadPoolExecutor) -> Iterator[np.ndarray]:
        for start in range(0, total, chunk_size):
            chunk = image_files[start : start + chunk_size]
            yield np.stack(list(pool.map(lambda p: load_letterboxed(p, size, max_pixels), chunk)))
            if progress:
                progress(min(start + chunk_size, total), total)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        write_npy_rows(target, (total, size, size, 3), np.uint8, chunks(pool))
    return TensorStoreStats(total, size, Path(target).stat().st_size, time.perf_counter() - started)


def open_tensor_store(path: Path | str) -> np.ndarray:
    """Memory-map a tensor store read-only."""
    return np.load(path, mmap_mode="r")
