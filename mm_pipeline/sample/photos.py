"""A product photo: the sub-category's silhouette in the card's colour, posed and lit at random.

The object (shape details, exact colour, proportions) follows the card's ``object_seed``, so re-listings of one
product show the same object; the pose, backdrop, lighting, blur and sensor noise follow the listing's ``key``,
so each listing gets its own photo.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mm_pipeline.sample.cards import ProductCard
from mm_pipeline.sample.vocabulary import COLOUR_RGB, SUB_CATEGORY_SPECS

_SUPERSAMPLE = 2  # shapes are drawn at twice the size and box-downsampled, for anti-aliased edges
_RGB = tuple[int, int, int]


def _mix(rgb: _RGB, target: int, t: float) -> _RGB:
    r, g, b = (round(c + (target - c) * t) for c in rgb)
    return r, g, b


def _paints(main: _RGB) -> dict[str, _RGB]:
    """Colours for a part's paint name: the product colour, its contrasting shade and tint, fixed materials."""
    luminance = 0.299 * main[0] + 0.587 * main[1] + 0.114 * main[2]
    return {
        "main": main,
        "shade": _mix(main, 255, 0.3) if luminance < 80 else _mix(main, 0, 0.32),
        "light": _mix(main, 255, 0.55) if luminance < 200 else _mix(main, 0, 0.18),
        "ink": (32, 32, 36) if luminance > 70 else (110, 110, 116),
        "metal": (178, 178, 184),
        "skin": (238, 198, 168),
        "white": (246, 246, 244),
    }


def _background(main: _RGB, rng: np.random.Generator) -> _RGB:
    """A light or dark studio backdrop, clearly distinct from the object's colour."""
    for _ in range(20):
        base = rng.uniform(170, 250) if rng.random() < 0.7 else rng.uniform(40, 130)
        r, g, b = (int(min(255.0, max(0.0, base + d))) for d in rng.normal(0, 14, 3))
        if math.dist((r, g, b), main) > 90:
            break
    return r, g, b


def render_photo(card: ProductCard, size: int, seed: int) -> Image.Image:
    """The card's ``size`` x ``size`` RGB photo; ``seed`` is the catalogue's seed."""
    obj = random.Random(card.object_seed)
    r, g, b = (min(255, max(0, round(c + obj.gauss(0, 8)))) for c in COLOUR_RGB[card.colour])
    colour = (r, g, b)
    parts = SUB_CATEGORY_SPECS[card.sub_category].silhouette(obj)
    stretch = np.array([obj.uniform(0.88, 1.12), obj.uniform(0.88, 1.12)])
    paints = _paints(colour)

    pose = np.random.default_rng([seed, card.key])  # differs between re-listings of one object
    canvas = size * _SUPERSAMPLE
    img = Image.new("RGB", (canvas, canvas), _background(colour, pose))
    draw = ImageDraw.Draw(img)
    if pose.random() < 0.3:  # table top in a second tone
        draw.rectangle(
            [0, int(canvas * pose.uniform(0.6, 0.8)), canvas, canvas], fill=_background(colour, pose)
        )
    angle = math.radians(pose.uniform(-20, 20))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    scale = pose.uniform(0.55, 0.82) * canvas / 2
    centre = canvas / 2 + pose.uniform(-0.12, 0.12, 2) * canvas
    flip = np.array([-1.0 if pose.random() < 0.5 else 1.0, 1.0])
    for paint, points, width in parts:
        xy = (points * stretch * flip) @ rotation.T * scale + centre
        if width:
            draw.line(
                xy.ravel().tolist(), fill=paints[paint], width=max(1, round(width * scale)), joint="curve"
            )
        else:
            draw.polygon(xy.ravel().tolist(), fill=paints[paint])
    img = img.reduce(_SUPERSAMPLE).filter(ImageFilter.BoxBlur(pose.uniform(0.0, 0.8)))

    # Lighting: overall brightness times a linear gradient in a random direction, plus sensor noise.
    axis = np.linspace(-1, 1, size, dtype=np.float32)
    direction = pose.uniform(0, 2 * math.pi)
    gradient = np.cos(direction) * axis[None, :] + np.sin(direction) * axis[:, None]
    light = pose.uniform(0.82, 1.15) * (1 + pose.uniform(0, 0.18) * gradient)
    amplitude = int(pose.integers(2, 9))
    noise = pose.integers(-amplitude, amplitude + 1, (size, size, 3), dtype=np.int16)
    pixels = np.asarray(img, dtype=np.float32) * light[..., None] + noise
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8))
