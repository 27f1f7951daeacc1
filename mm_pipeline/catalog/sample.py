"""Deterministic demo catalogue: Russian Wildberries-style product cards with synthetic product photos.

``generate_sample`` writes ``out_dir/batches/batch_NNN.parquet`` and one JPEG per product under
``out_dir/images/<nm>.jpg``. Everything is derived from ``seed`` alone, so two runs with the same arguments give
byte-identical files.

What the demo data is meant to exercise downstream:

* text: gender and age are stated only in titles/descriptions (женский, мужской, для девочки, детский, ...),
  descriptions carry marketplace noise (HTML tags and entities, emoji, CAPS phrases, odd whitespace, ``ё``
  written as ``е``, ~5% empty);
* images: each sub-category has its own silhouette, filled with the colour named in the text, on a varied
  background with random pose, lighting, blur and noise;
* near-duplicates: ~11% of rows belong to re-listing groups (``dup_group`` >= 0) - same product, new ``nm``,
  reworded text, price within ±5% and a different photo of the same object;
* rejects: each batch holds 3-6 bad rows (missing image, blank title, ``nm`` repeated later in the same batch)
  that are not flagged in any column.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from mm_pipeline.storage import atomic_dir, write_parquet

MIN_PRODUCTS_PER_BATCH = 20  # smallest batch generate_sample writes (the CLI checks --n against it)

# ----------------------------------------------------------------------------------------------------------
# Drawing primitives. A part is (paint, points, line_width) in unit coordinates: x right, y down, both within
# [-1, 1]; line_width 0 means a filled polygon.

_Part = tuple[str, np.ndarray, float]
_Shape = Callable[[random.Random], list[_Part]]


_Point = tuple[float, float]


def _poly(paint: str, *points: _Point) -> _Part:
    return paint, np.array(points, dtype=float), 0.0


def _line(paint: str, width: float, *points: _Point) -> _Part:
    return paint, np.array(points, dtype=float), width


def _rect(paint: str, x0: float, y0: float, x1: float, y1: float) -> _Part:
    return _poly(paint, (x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _ellipse(
    paint: str, cx: float, cy: float, rx: float, ry: float, a0: float = 0, a1: float = 360, width: float = 0.0
) -> _Part:
    """Filled ellipse (or sector between angles a0..a1 in degrees), or its outline arc when width > 0."""
    t = np.radians(np.linspace(a0, a1, 32))
    return paint, np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)]), width


def _rrect(paint: str, x0: float, y0: float, x1: float, y1: float, r: float) -> _Part:
    corners = ((x1 - r, y0 + r, 270), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180))
    t = np.radians(np.linspace(0, 90, 6))
    pts = [
        np.column_stack([cx + r * np.cos(t + math.radians(a)), cy + r * np.sin(t + math.radians(a))])
        for cx, cy, a in corners
    ]
    return paint, np.vstack(pts), 0.0


def _sym(paint: str, *right: _Point) -> _Part:
    """Polygon symmetric about x=0, given its right half from top to bottom."""
    pts = np.array(right, dtype=float)
    return paint, np.vstack([pts, pts[::-1] * (-1, 1)]), 0.0


def _long_sleeved(w: float) -> _Part:
    return _sym(
        "main",
        (0, -0.8),
        (0.16, -0.9),
        (w, -0.8),
        (w + 0.25, -0.55),
        (w + 0.42, 0.55),
        (w + 0.2, 0.6),
        (w + 0.04, -0.3),
        (w, -0.3),
        (w, 0.9),
        (0, 0.9),
    )


def _short_sleeved(w: float) -> _Part:
    return _sym(
        "main",
        (0, -0.78),
        (0.16, -0.9),
        (w, -0.8),
        (w + 0.4, -0.45),
        (w + 0.22, -0.25),
        (w, -0.42),
        (w, 0.9),
        (0, 0.9),
    )


# ----------------------------------------------------------------------------------------------------------
# One silhouette per sub-category; ``v`` varies details per object (a re-listing reuses the same object).


def _dress(v: random.Random) -> list[_Part]:
    hem, waist = v.uniform(0.55, 0.85), v.uniform(-0.25, -0.1)
    parts = [_sym("main", (0, -0.72), (0.14, -0.9), (0.3, -0.9), (0.24, waist), (hem, 0.92), (0, 0.92))]
    if v.random() < 0.5:
        parts.append(_sym("main", (0.3, -0.9), (0.5, -0.72), (0.4, -0.6), (0.27, -0.62)))
    return [*parts, _line("shade", 0.06, (-0.25, waist), (0.25, waist))]


def _tshirt(v: random.Random) -> list[_Part]:
    return [_short_sleeved(v.uniform(0.4, 0.5)), _ellipse("shade", 0, -0.86, 0.17, 0.08)]


def _shirt(v: random.Random) -> list[_Part]:
    buttons = [_ellipse("ink", 0, y, 0.03, 0.03) for y in (-0.5, -0.2, 0.1, 0.4, 0.7)]
    collar = [
        _poly("light", (0, -0.7), (0.05 * s, -0.92), (0.22 * s, -0.9), (0.2 * s, -0.68)) for s in (-1, 1)
    ]
    return [
        _long_sleeved(v.uniform(0.38, 0.44)),
        _line("shade", 0.03, (0, -0.7), (0, 0.9)),
        *collar,
        *buttons,
    ]


def _hoodie(v: random.Random) -> list[_Part]:
    return [
        _ellipse("shade", 0, -0.82, 0.3, 0.2),
        _long_sleeved(v.uniform(0.44, 0.5)),
        _poly("shade", (-0.3, 0.25), (0.3, 0.25), (0.4, 0.65), (-0.4, 0.65)),
        _line("light", 0.025, (-0.08, -0.8), (-0.1, -0.4)),
        _line("light", 0.025, (0.08, -0.8), (0.1, -0.4)),
    ]


def _sweater(v: random.Random) -> list[_Part]:
    w = v.uniform(0.42, 0.48)
    stripes = [_rect("light", -w, y, w, y + 0.1) for y in (-0.4, -0.15)]
    return [
        _long_sleeved(w),
        _rect("shade", -w, 0.75, w, 0.9),
        *stripes,
        _ellipse("shade", 0, -0.85, 0.18, 0.07),
    ]


def _jacket(v: random.Random) -> list[_Part]:
    w = v.uniform(0.5, 0.56)
    quilting = [_line("shade", 0.025, (-w - 0.35, y), (w + 0.35, y)) for y in (-0.45, -0.1, 0.25, 0.6)]
    return [
        _long_sleeved(w),
        *quilting,
        _line("ink", 0.035, (0, -0.85), (0, 0.9)),
        _rect("shade", -0.2, -0.95, 0.2, -0.78),
    ]


def _trousers(v: random.Random) -> list[_Part]:
    w = v.uniform(0.4, 0.48)
    return [
        _sym("main", (0, -0.9), (w, -0.9), (w + 0.08, 0.95), (0.1, 0.95), (0, -0.2)),
        _rect("shade", -w, -0.9, w, -0.78),
    ]


def _shorts(v: random.Random) -> list[_Part]:
    w = v.uniform(0.52, 0.6)
    return [
        _sym("main", (0, -0.55), (w, -0.55), (w + 0.15, 0.4), (0.08, 0.45), (0, -0.05)),
        _rect("shade", -w, -0.55, w, -0.42),
    ]


def _skirt(v: random.Random) -> list[_Part]:
    hem = v.uniform(0.7, 0.9)
    pleats = [_line("shade", 0.025, (x * 0.4, -0.6), (x * hem, 0.8)) for x in (-0.5, 0, 0.5)]
    return [
        _poly("main", (-0.4, -0.6), (0.4, -0.6), (hem, 0.8), (-hem, 0.8)),
        _rect("shade", -0.4, -0.75, 0.4, -0.6),
        *pleats,
    ]


def _jumpsuit(v: random.Random) -> list[_Part]:
    w = v.uniform(0.38, 0.44)
    body = _sym(
        "main",
        (0, -0.78),
        (0.15, -0.9),
        (w, -0.82),
        (w + 0.3, -0.5),
        (w + 0.14, -0.35),
        (w, -0.45),
        (w + 0.05, 0.92),
        (0.1, 0.92),
        (0, 0.1),
    )
    return [body, _rect("shade", -w, -0.05, w, 0.05), _line("ink", 0.03, (0, -0.75), (0, -0.05))]


def _socks(v: random.Random) -> list[_Part]:
    toe = v.uniform(0.75, 0.9)
    return [
        _poly(
            "main",
            (-0.35, -0.9),
            (0.2, -0.9),
            (0.2, 0.25),
            (toe, 0.4),
            (toe + 0.05, 0.7),
            (toe - 0.1, 0.9),
            (-0.25, 0.9),
            (-0.35, 0.7),
        ),
        _rect("shade", -0.35, -0.9, 0.2, -0.72),
        _ellipse("shade", -0.26, 0.72, 0.1, 0.16),
    ]


def _hat(v: random.Random) -> list[_Part]:
    knit = [_line("shade", 0.025, (x, 0.05), (x * 0.4, -0.65)) for x in (-0.4, 0, 0.4)]
    parts = [
        _ellipse("main", 0, 0.1, 0.7, 0.85, 180, 360),
        *knit,
        _rrect("shade", -0.75, 0.05, 0.75, 0.45, 0.08),
    ]
    if v.random() < 0.6:
        parts.append(_ellipse("light", 0, -0.78, 0.2, 0.2))
    return parts


def _sneakers(v: random.Random) -> list[_Part]:
    h = v.uniform(-0.4, -0.28)
    laces = [
        _line(
            "ink", 0.03, (x, h + 0.12 + (x + 0.2) * 0.7 - 0.08), (x + 0.1, h + 0.12 + (x + 0.2) * 0.7 + 0.06)
        )
        for x in (-0.15, 0.0, 0.15)
    ]
    return [
        _poly(
            "main",
            (-0.9, 0.25),
            (-0.88, -0.25),
            (-0.55, h),
            (-0.2, h + 0.05),
            (0.15, -0.05),
            (0.6, 0.05),
            (0.88, 0.15),
            (0.92, 0.3),
        ),
        _rrect("white", -0.95, 0.22, 0.95, 0.45, 0.08),
        _line("shade", 0.06, (-0.55, 0.1), (0.3, -0.02)),
        *laces,
    ]


def _boots(v: random.Random) -> list[_Part]:
    top = v.uniform(-0.95, -0.7)
    return [
        _poly(
            "main",
            (-0.45, top),
            (0.1, top),
            (0.12, 0.15),
            (0.7, 0.35),
            (0.9, 0.55),
            (0.9, 0.75),
            (-0.5, 0.75),
        ),
        _rect("ink", -0.52, 0.72, 0.92, 0.84),
        _rect("ink", -0.5, 0.8, -0.2, 0.95),
        _rect("shade", -0.46, top, 0.11, top + 0.14),
    ]


def _heels(v: random.Random) -> list[_Part]:
    heel = v.uniform(0.75, 0.95)
    body = _poly(
        "main",
        (-0.8, -0.1),
        (-0.55, -0.2),
        (-0.3, -0.05),
        (0.2, 0.35),
        (0.75, 0.45),
        (0.92, 0.6),
        (0.85, 0.7),
        (0.2, 0.62),
        (-0.4, 0.25),
        (-0.8, 0.2),
    )
    return [body, _poly("ink", (-0.78, 0.18), (-0.62, 0.2), (-0.66, heel), (-0.72, heel))]


def _sandals(v: random.Random) -> list[_Part]:
    straps = [
        _ellipse("main", x, 0.45, 0.26, v.uniform(0.35, 0.5), 180, 360, width=0.15)
        for x in (-0.5, 0.05, 0.55)
    ]
    return [_poly("shade", (-0.92, 0.45), (0.92, 0.45), (0.95, 0.62), (-0.95, 0.62)), *straps]


def _slippers(v: random.Random) -> list[_Part]:
    """A pair seen from above, toes up: soles in the product colour, contrasting toe caps."""
    cover = v.uniform(0.4, 0.5)
    parts = []
    for x in (-0.42, 0.42):
        parts += [_ellipse("main", x, 0.05, 0.3, 0.88), _ellipse("shade", x, -0.4, 0.33, cover, 180, 360)]
        parts.append(_rect("shade", x - 0.33, -0.42, x + 0.33, -0.3))
    return parts


def _teddy(v: random.Random) -> list[_Part]:
    ear = v.uniform(0.13, 0.18)
    return [
        _ellipse("main", 0, 0.35, 0.5, 0.55),
        *[_ellipse("main", 0.45 * s, 0.15, 0.16, 0.3) for s in (-1, 1)],
        *[_ellipse("main", 0.33 * s, -0.72, ear, ear) for s in (-1, 1)],
        _ellipse("main", 0, -0.4, 0.42, 0.38),
        _ellipse("light", 0, -0.28, 0.17, 0.12),
        *[_ellipse("ink", 0.15 * s, -0.5, 0.04, 0.05) for s in (-1, 1)],
        _ellipse("light", 0, 0.4, 0.25, 0.3),
    ]


def _brick(v: random.Random) -> list[_Part]:
    studs = v.choice((2, 3, 4))
    step = 1.5 / studs
    parts = [_rrect("main", -0.85, -0.25, 0.85, 0.55, 0.05), _rect("shade", -0.85, 0.4, 0.85, 0.55)]
    for i in range(studs):
        x = -0.75 + step * (i + 0.5)
        parts += [_rect("main", x - 0.15, -0.45, x + 0.15, -0.25), _ellipse("light", x, -0.45, 0.15, 0.05)]
    return parts


def _toy_car(v: random.Random) -> list[_Part]:
    roof = v.uniform(-0.55, -0.4)
    return [
        _poly(
            "main",
            (-0.95, 0.25),
            (-0.9, -0.05),
            (-0.45, -0.1),
            (-0.25, roof),
            (0.35, roof),
            (0.55, -0.1),
            (0.92, -0.02),
            (0.95, 0.25),
        ),
        _poly("light", (-0.2, roof + 0.07), (0.0, roof + 0.07), (0.0, -0.12), (-0.38, -0.12)),
        _poly("light", (0.08, roof + 0.07), (0.3, roof + 0.07), (0.45, -0.12), (0.08, -0.12)),
        *[_ellipse("ink", x, 0.3, 0.2, 0.2) for x in (-0.55, 0.55)],
        *[_ellipse("metal", x, 0.3, 0.08, 0.08) for x in (-0.55, 0.55)],
    ]


def _doll(v: random.Random) -> list[_Part]:
    hem = v.uniform(0.5, 0.65)
    return [
        *[_line("skin", 0.08, (0.15 * s, 0.8), (0.15 * s, 0.98)) for s in (-1, 1)],
        *[_line("skin", 0.07, (0.18 * s, -0.15), (0.45 * s, 0.3)) for s in (-1, 1)],
        _poly("main", (-0.2, -0.2), (0.2, -0.2), (hem, 0.85), (-hem, 0.85)),
        _ellipse("shade", 0, -0.58, 0.3, 0.32),
        _ellipse("skin", 0, -0.5, 0.24, 0.26),
    ]


def _pyramid(v: random.Random) -> list[_Part]:
    rings = v.choice((4, 5))
    parts = [_rect("shade", -0.6, 0.8, 0.6, 0.92), _line("metal", 0.06, (0, 0.8), (0, -0.85))]
    for i in range(rings):
        y, w = 0.65 - i * 0.3, 0.85 - i * 0.13
        parts.append(_ellipse("main" if i % 2 == 0 else "shade", 0, y, w, 0.15))
    return [
        *parts,
        _poly("main", (0, -0.95), (0.2, -0.65 + (5 - rings) * 0.3), (-0.2, -0.65 + (5 - rings) * 0.3)),
    ]


def _smartphone(v: random.Random) -> list[_Part]:
    lenses = v.choice((2, 3))
    return [
        _rrect("main", -0.42, -0.9, 0.42, 0.9, 0.12),
        _rrect("shade", -0.34, -0.82, -0.02, -0.42, 0.08),
        *[_ellipse("ink", -0.18, -0.74 + i * 0.28 / max(1, lenses - 1), 0.07, 0.07) for i in range(lenses)],
    ]


def _headphones(v: random.Random) -> list[_Part]:
    cup = v.uniform(0.28, 0.36)
    return [
        _ellipse("main", 0, 0, 0.7, 0.75, 190, 350, width=0.14),
        *[_ellipse("main", 0.7 * s, 0.25, 0.2, cup) for s in (-1, 1)],
        *[_ellipse("shade", 0.55 * s, 0.25, 0.08, cup - 0.06) for s in (-1, 1)],
    ]


def _laptop(v: random.Random) -> list[_Part]:
    top = v.uniform(-0.75, -0.6)
    return [
        _rrect("main", -0.85, top, 0.85, 0.45, 0.05),
        _ellipse("light", 0, (top + 0.45) / 2, 0.1, 0.1),
        _poly("shade", (-0.95, 0.45), (0.95, 0.45), (0.85, 0.6), (-0.85, 0.6)),
    ]


def _smartwatch(v: random.Random) -> list[_Part]:
    half = v.uniform(0.36, 0.44)
    return [
        _rect("shade", -0.25, -0.95, 0.25, 0.95),
        _rrect("main", -half, -half - 0.05, half, half + 0.05, 0.12),
        _rrect("ink", -half + 0.16, -half + 0.1, half - 0.16, half - 0.1, 0.05),
    ]


def _speaker(v: random.Random) -> list[_Part]:
    r = v.uniform(0.2, 0.26)
    return [
        _rrect("main", -0.9, -0.38, 0.9, 0.38, 0.35),
        *[_ellipse("shade", 0.48 * s, 0, r, r) for s in (-1, 1)],
        _ellipse("light", 0, -0.22, 0.06, 0.06),
    ]


def _gamepad(v: random.Random) -> list[_Part]:
    grip = v.uniform(0.4, 0.5)
    return [
        *[_ellipse("main", 0.5 * s, 0.2, 0.36, grip) for s in (-1, 1)],
        _rrect("main", -0.62, -0.35, 0.62, 0.25, 0.2),
        _rect("ink", -0.55, -0.1, -0.35, 0.0),
        _rect("ink", -0.5, -0.15, -0.4, 0.05),
        *[
            _ellipse("light", 0.45 + dx, -0.05 + dy, 0.05, 0.05)
            for dx, dy in ((0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1))
        ],
        *[_ellipse("ink", 0.2 * s, 0.2, 0.1, 0.1) for s in (-1, 1)],
    ]


def _mug(v: random.Random) -> list[_Part]:
    w = v.uniform(0.4, 0.5)
    return [
        _ellipse("main", w - 0.05, 0.05, 0.3, 0.32, -90, 90, width=0.12),
        _rrect("main", -w - 0.1, -0.6, w, 0.75, 0.08),
        _ellipse("shade", -0.05, -0.6, w + 0.05, 0.08),
    ]


def _frying_pan(v: random.Random) -> list[_Part]:
    r = v.uniform(0.55, 0.65)
    return [
        _rrect("ink", 0.3, -0.08, 0.98, 0.08, 0.05),
        _ellipse("main", -0.3, 0, r, r),
        _ellipse("shade", -0.3, 0, r - 0.1, r - 0.1),
    ]


def _pillow(v: random.Random) -> list[_Part]:
    dent = v.uniform(0.65, 0.75)
    return [
        _poly(
            "main",
            (-0.85, -0.85),
            (0, -dent),
            (0.85, -0.85),
            (dent, 0),
            (0.85, 0.85),
            (0, dent),
            (-0.85, 0.85),
            (-dent, 0),
        ),
        _line("shade", 0.02, (-0.6, -0.6), (0.6, 0.6)),
        _ellipse("light", 0, 0, 0.06, 0.06),
    ]


def _desk_lamp(v: random.Random) -> list[_Part]:
    flare = v.uniform(0.6, 0.75)
    return [
        _line("metal", 0.06, (0, 0.8), (0.05, 0.05)),
        _ellipse("shade", 0, 0.82, 0.4, 0.1),
        _poly("main", (-0.25, -0.8), (0.25, -0.8), (flare, 0.05), (-flare, 0.05)),
    ]


def _kettle(v: random.Random) -> list[_Part]:
    base = v.uniform(0.6, 0.7)
    return [
        _ellipse("ink", -0.55, 0.1, 0.3, 0.45, 90, 270, width=0.1),
        _poly("main", (0.45, -0.1), (0.9, -0.5), (0.95, -0.42), (0.55, 0.25)),
        _poly("main", (-0.5, -0.45), (0.4, -0.45), (base, 0.75), (-base - 0.05, 0.75)),
        _ellipse("shade", -0.05, -0.48, 0.35, 0.08),
        _ellipse("ink", -0.05, -0.58, 0.08, 0.06),
        _rect("ink", -base - 0.08, 0.75, base + 0.03, 0.88),
    ]


def _lipstick(v: random.Random) -> list[_Part]:
    tip = v.uniform(-0.9, -0.75)
    return [
        _poly("main", (-0.17, 0.0), (-0.17, -0.55), (0.17, tip), (0.17, 0.0)),
        _rect("main", -0.25, 0.05, 0.25, 0.9),
        _rect("metal", -0.26, -0.05, 0.26, 0.08),
    ]


def _perfume(v: random.Random) -> list[_Part]:
    w = v.uniform(0.45, 0.6)
    return [
        _rect("metal", -0.12, -0.5, 0.12, -0.3),
        _rrect("shade", -0.22, -0.85, 0.22, -0.5, 0.05),
        _rrect("main", -w, -0.35, w, 0.85, 0.12),
        _rect("light", -0.25, 0.15, 0.25, 0.4),
    ]


def _cream_jar(v: random.Random) -> list[_Part]:
    w = v.uniform(0.65, 0.8)
    return [
        _rrect("main", -w, -0.1, w, 0.6, 0.1),
        _rrect("shade", -w - 0.05, -0.45, w + 0.05, -0.1, 0.06),
        _ellipse("light", 0, 0.25, 0.25, 0.12),
    ]


def _shampoo(v: random.Random) -> list[_Part]:
    w = v.uniform(0.35, 0.45)
    return [
        _rrect("shade", -0.18, -0.9, 0.18, -0.5, 0.04),
        _sym("main", (0.15, -0.55), (w, -0.35), (w, 0.9)),
        _rect("light", -w + 0.1, 0.15, w - 0.1, 0.45),
    ]


def _nail_polish(v: random.Random) -> list[_Part]:
    cap = v.uniform(-0.95, -0.8)
    return [_rect("ink", -0.16, cap, 0.16, 0.05), _rrect("main", -0.45, 0.0, 0.45, 0.85, 0.15)]


def _fiction_book(v: random.Random) -> list[_Part]:
    lines = [_line("light", 0.05, (-0.3, y), (v.uniform(0.2, 0.45), y)) for y in (-0.5, -0.36, -0.22)]
    return [
        _rect("main", -0.6, -0.85, 0.6, 0.85),
        _rect("shade", -0.6, -0.85, -0.45, 0.85),
        *lines,
        _line("light", 0.03, (-0.2, 0.6), (0.3, 0.6)),
    ]


def _kids_book(v: random.Random) -> list[_Part]:
    sun = v.uniform(0.18, 0.28)
    return [
        _rrect("main", -0.75, -0.7, 0.75, 0.7, 0.06),
        _ellipse("light", 0.3, -0.25, sun, sun),
        _ellipse("shade", -0.2, 0.9, 0.9, 0.45, 180, 360),
        _rect("shade", -0.75, 0.45, 0.75, 0.7),
    ]


def _textbook(v: random.Random) -> list[_Part]:
    depth = v.uniform(0.25, 0.35)
    pages = [
        _line("shade", 0.015, (0.45 + t * depth, -0.6 - t * 0.25), (0.45 + t * depth, 0.9 - t * 0.25))
        for t in (0.3, 0.6)
    ]
    return [
        _poly("light", (-0.65, -0.6), (0.45, -0.6), (0.45 + depth, -0.85), (-0.65 + depth, -0.85)),
        _poly("light", (0.45, -0.6), (0.45 + depth, -0.85), (0.45 + depth, 0.65), (0.45, 0.9)),
        *pages,
        _rect("main", -0.65, -0.6, 0.45, 0.9),
        _rect("light", -0.45, -0.35, 0.25, -0.1),
    ]


def _ball(v: random.Random) -> list[_Part]:
    seam = v.uniform(0.25, 0.45)
    return [
        _ellipse("main", 0, 0, 0.85, 0.85),
        _ellipse("shade", 0, 0, seam, 0.85, width=0.05),
        _ellipse("shade", 0, 0, 0.85, 0.3, 0, 180, width=0.05),
    ]


def _dumbbell(v: random.Random) -> list[_Part]:
    plate = v.uniform(0.35, 0.5)
    return [
        _rect("metal", -0.85, -0.06, 0.85, 0.06),
        *[_rrect("main", a, -plate, b, plate, 0.06) for a, b in ((-0.72, -0.32), (0.32, 0.72))],
        *[_rect("shade", a, -0.05, b, 0.05) for a, b in ((-0.32, -0.25), (0.25, 0.32))],
    ]


def _yoga_mat(v: random.Random) -> list[_Part]:
    r = v.uniform(0.25, 0.32)
    return [
        _poly("main", (-0.85, r), (0.6, r), (0.8, r + 0.3), (-0.7, r + 0.3)),
        _rect("main", -0.85, -r, 0.6, r),
        _ellipse("shade", 0.6, 0, 0.16, r),
        _ellipse("main", 0.6, 0, 0.1, r * 0.65, width=0.03),
    ]


def _bicycle(v: random.Random) -> list[_Part]:
    r = v.uniform(0.33, 0.4)
    return [
        *[_ellipse("ink", x, 0.4, r, r, width=0.07) for x in (-0.55, 0.55)],
        _line("main", 0.12, (-0.55, 0.4), (-0.1, 0.4), (0.35, -0.25), (-0.25, -0.25), (-0.55, 0.4)),
        _line("main", 0.12, (-0.1, 0.4), (-0.3, -0.4)),
        _line("main", 0.1, (0.35, -0.25), (0.55, 0.4)),
        _rect("ink", -0.45, -0.5, -0.15, -0.4),
        _line("ink", 0.06, (0.3, -0.45), (0.5, -0.5)),
    ]


def _racket(v: random.Random) -> list[_Part]:
    head = v.uniform(0.5, 0.6)
    strings = [
        _line(
            "light",
            0.015,
            (x, -0.35 - head * 0.9 * math.sqrt(1 - (x / 0.45) ** 2)),
            (x, -0.35 + head * 0.9 * math.sqrt(1 - (x / 0.45) ** 2)),
        )
        for x in (-0.24, -0.08, 0.08, 0.24)
    ]
    return [
        _rect("main", -0.07, 0.15, 0.07, 0.95),
        _rect("shade", -0.08, 0.6, 0.08, 0.95),
        *strings,
        _ellipse("main", 0, -0.35, 0.45, head, width=0.1),
    ]


def _bag(v: random.Random) -> list[_Part]:
    flare = v.uniform(0.85, 0.95)
    return [
        _ellipse("shade", 0, -0.2, 0.45, 0.55, 180, 360, width=0.08),
        _poly("main", (-0.75, -0.2), (0.75, -0.2), (flare, 0.8), (-flare, 0.8)),
        _line("shade", 0.03, (-0.75, 0.2), (0.75, 0.2)),
        _rect("metal", -0.08, 0.15, 0.08, 0.3),
    ]


def _backpack(v: random.Random) -> list[_Part]:
    pocket = v.uniform(0.3, 0.45)
    return [
        _ellipse("shade", 0, -0.7, 0.18, 0.18, 180, 360, width=0.06),
        _rrect("main", -0.6, -0.7, 0.6, 0.9, 0.25),
        _rrect("shade", -pocket, 0.25, pocket, 0.75, 0.1),
        _ellipse("ink", 0, -0.1, 0.45, 0.45, 200, 340, width=0.03),
    ]


def _sunglasses(v: random.Random) -> list[_Part]:
    ry = v.uniform(0.22, 0.32)
    return [
        *[_line("ink", 0.05, (0.8 * s, -0.1), (0.98 * s, -0.25)) for s in (-1, 1)],
        *[_ellipse("main", 0.45 * s, 0, 0.36, ry) for s in (-1, 1)],
        *[_ellipse("ink", 0.45 * s, 0, 0.36, ry, width=0.05) for s in (-1, 1)],
        _ellipse("ink", 0, -0.02, 0.1, 0.06, 180, 360, width=0.05),
    ]


def _belt(v: random.Random) -> list[_Part]:
    coils = [_ellipse("main", 0, 0, r, r, width=0.15) for r in (0.78, 0.56, 0.34)]
    return [
        *coils,
        _rect("main", 0.2, 0.65, 0.95, 0.85),
        _ellipse("metal", 0.62, -0.62, 0.16, v.uniform(0.18, 0.24), width=0.06),
    ]


def _umbrella(v: random.Random) -> list[_Part]:
    scallops = v.choice((4, 5, 6))
    xs = np.linspace(0.95, -0.95, scallops * 2 + 1)
    scalloped_edge = [(x, 0.0 if i % 2 == 0 else -0.12) for i, x in enumerate(xs)]
    canopy = np.vstack([_ellipse("main", 0, 0, 0.95, 0.75, 180, 360)[1], scalloped_edge])
    ribs = [_line("shade", 0.02, (0, -0.75), (x, 0.0)) for x in xs[2:-1:2]]
    return [
        _line("ink", 0.05, (0, -0.85), (0, 0.75)),
        _ellipse("ink", -0.12, 0.75, 0.12, 0.12, 0, 180, width=0.05),
        ("main", canopy, 0.0),
        *ribs,
    ]


def _hookah(v: random.Random) -> list[_Part]:
    vase = v.uniform(0.42, 0.52)
    return [
        _line("ink", 0.05, (0.06, -0.25), (0.5, -0.3), (0.75, 0.0), (0.8, 0.6), (0.7, 0.85)),
        _rect("metal", -0.06, -0.6, 0.06, 0.2),
        _ellipse("metal", 0, -0.5, 0.25, 0.05),
        _poly("shade", (-0.18, -0.85), (0.18, -0.85), (0.08, -0.6), (-0.08, -0.6)),
        _ellipse("main", 0, 0.45, vase, 0.45),
    ]


def _vape(v: random.Random) -> list[_Part]:
    w = v.uniform(0.25, 0.32)
    return [
        _rrect("ink", -0.16, -0.95, 0.16, -0.55, 0.06),
        _rrect("main", -w, -0.65, w, 0.95, 0.14),
        _rrect("light", -0.12, -0.45, 0.12, -0.1, 0.04),
        _ellipse("ink", 0, 0.3, 0.05, 0.05),
    ]


def _tobacco_pouch(v: random.Random) -> list[_Part]:
    teeth = v.choice((6, 8, 10))
    xs = np.linspace(-0.6, 0.6, teeth + 1)
    zigzag = [(x, -0.75 if i % 2 == 0 else -0.85) for i, x in enumerate(xs)]
    return [
        _poly("main", (0.65, 0.9), (-0.65, 0.9), *zigzag),
        _line("shade", 0.04, (-0.6, -0.55), (0.6, -0.55)),
        _ellipse("light", 0, 0.2, 0.25, 0.18),
    ]


def _lingerie(v: random.Random) -> list[_Part]:
    cup = v.uniform(0.35, 0.45)
    return [
        *[_line("shade", 0.04, (0.6 * s, -0.15), (0.45 * s, -0.9)) for s in (-1, 1)],
        *[_ellipse("main", 0.38 * s, 0.05, 0.38, cup, 180, 360) for s in (-1, 1)],
        _rect("main", -0.85, 0.05, 0.85, 0.22),
        _ellipse("light", 0, 0.02, 0.07, 0.05),
    ]


def _pump_bottle(v: random.Random) -> list[_Part]:
    w = v.uniform(0.3, 0.4)
    return [
        _rect("ink", -0.15, -0.45, 0.15, -0.3),
        _rect("ink", -0.1, -0.75, 0.1, -0.45),
        _rect("ink", 0.1, -0.75, 0.45, -0.67),
        _rrect("main", -w, -0.3, w, 0.9, 0.1),
    ]


# ----------------------------------------------------------------------------------------------------------
# Taxonomy and vocabulary.


@dataclass(frozen=True)
class _Category:
    brands: tuple[str, ...]
    material_label: str
    materials: tuple[str, ...]
    features: tuple[str, ...]
    emoji: tuple[str, ...]
    weight: float = 1.0
    sizing: str | None = None  # "clothes" | "shoes": add a size line that depends on the audience
    adult: bool = False


@dataclass(frozen=True)
class _SubCategory:
    category: str
    nouns: tuple[tuple[str, str], ...]  # (noun phrase, grammatical gender: m / f / n / pl)
    median_price: float
    shape: _Shape
    adjectives: tuple[str, ...]  # masculine nominative, at least two; declined to agree with the noun
    extras: tuple[str, ...]  # invariant phrases placed after the noun
    audiences: str = "none"  # key of _AUDIENCE_MIXES
    palette: tuple[str, ...] = ()  # allowed colours; empty = all
    colour_of: str | None = None  # e.g. "Цвет обложки": colour is described, never put in the title


_CLOTHES_CARE = (
    "Стирка при 30 °C.",
    "Деликатная стирка, не отбеливать.",
    "Рекомендуется ручная стирка, сушить в расправленном виде.",
)

_CATEGORIES: dict[str, _Category] = {
    "Одежда": _Category(
        brands=(
            "Zolla",
            "Befree",
            "O'STIN",
            "Gloria Jeans",
            "Lichi",
            "Mark Formelle",
            "Твоё",
            "Снежная Королева",
            "Северная Звезда",
            "Ивановский трикотаж",
            "Dreamwhite",
            "Baon",
        ),
        material_label="Состав",
        materials=(
            "хлопок 100%",
            "хлопок 95%, эластан 5%",
            "вискоза 70%, полиэстер 30%",
            "лён 100%",
            "полиэстер 100%",
            "шерсть 30%, акрил 70%",
            "трикотаж (хлопок, полиэстер)",
        ),
        features=(
            "Свободный крой не сковывает движений.",
            "Ткань приятная к телу, дышит и не электризуется.",
            "Сохраняет форму и цвет после многих стирок.",
            "Легко сочетается с базовым гардеробом.",
            "Модель соответствует размерной сетке, рекомендуем брать свой размер.",
            "Качественные швы и фурнитура.",
        ),
        emoji=("👗", "✨", "🔥", "💯", "❤️"),
        weight=1.6,
        sizing="clothes",
    ),
    "Обувь": _Category(
        brands=(
            "Kari",
            "Zenden",
            "Ralf Ringer",
            "Котофей",
            "Юничел",
            "Respect",
            "Тофа",
            "Baden",
            "Ecco",
            "Demix",
        ),
        material_label="Материал верха",
        materials=("натуральная кожа", "экокожа", "текстиль", "замша", "нубук", "сетка"),
        features=(
            "Анатомическая стелька обеспечивает комфорт весь день.",
            "Нескользящая подошва из ТЭП.",
            "Лёгкая и гибкая модель.",
            "Размер соответствует российской размерной сетке.",
            "Усиленный задник надёжно фиксирует стопу.",
        ),
        emoji=("👟", "👢", "✨", "🔥"),
        weight=1.4,
        sizing="shoes",
    ),
    "Детские товары": _Category(
        brands=(
            "Мякиши",
            "Играем вместе",
            "Полесье",
            "Step Puzzle",
            "Hasbro",
            "Mattel",
            "Десятое королевство",
            "Bondibon",
            "Технопарк",
        ),
        material_label="Материал",
        materials=("пластик ABS", "плюш, синтепон", "дерево", "силикон", "текстиль"),
        features=(
            "Изготовлено из безопасных гипоаллергенных материалов.",
            "Развивает мелкую моторику и воображение.",
            "Имеет сертификат соответствия EAC.",
            "Яркий подарок на день рождения или Новый год.",
        ),
        emoji=("🧸", "🎁", "🎈", "⭐"),
    ),
    "Электроника": _Category(
        brands=(
            "Xiaomi",
            "Samsung",
            "Apple",
            "Honor",
            "Realme",
            "JBL",
            "Huawei",
            "Яндекс",
            "Digma",
            "Defender",
            "Sony",
        ),
        material_label="Материал корпуса",
        materials=("пластик", "алюминий", "стекло и металл", "soft-touch пластик"),
        features=(
            "Гарантия производителя 1 год.",
            "Поддержка быстрой зарядки.",
            "Bluetooth 5.3 и стабильное соединение.",
            "Ёмкий аккумулятор на весь день.",
            "Оригинальная продукция, русифицированное меню.",
            "В комплекте кабель USB Type-C и инструкция на русском языке.",
        ),
        emoji=("📱", "⚡", "🔥", "💯"),
    ),
    "Дом и кухня": _Category(
        brands=(
            "Tefal",
            "Kukmara",
            "Нева Металл Посуда",
            "Bork",
            "Этель",
            "Polaris",
            "Доляна",
            "Ивановский текстиль",
            "Luminarc",
        ),
        material_label="Материал",
        materials=(
            "керамика",
            "фарфор",
            "нержавеющая сталь",
            "алюминий с антипригарным покрытием",
            "хлопок, холлофайбер",
            "стекло",
        ),
        features=(
            "Подходит для ежедневного использования.",
            "Можно мыть в посудомоечной машине.",
            "Экологичные материалы без запаха.",
            "Отличный подарок на новоселье.",
            "Стильный дизайн дополнит любой интерьер.",
        ),
        emoji=("🏠", "☕", "✨", "🎁"),
    ),
    "Красота": _Category(
        brands=(
            "Чистая линия",
            "Natura Siberica",
            "L'Oréal Paris",
            "Maybelline",
            "Vivienne Sabo",
            "Бархатные ручки",
            "Librederm",
            "Faberlic",
            "Essence",
        ),
        material_label="Объём",
        materials=("3,5 г", "10 мл", "30 мл", "50 мл", "100 мл", "250 мл"),
        features=(
            "Не тестируется на животных.",
            "Подходит для всех типов кожи.",
            "Дерматологически протестировано.",
            "Стойкий результат до 12 часов.",
            "Не содержит парабенов и силиконов.",
        ),
        emoji=("💄", "💅", "✨", "🌸"),
    ),
    "Книги": _Category(
        brands=(
            "Эксмо",
            "АСТ",
            "Росмэн",
            "Махаон",
            "МИФ",
            "Просвещение",
            "Азбука",
            "Альпина Паблишер",
            "Феникс",
        ),
        material_label="Переплёт",
        materials=("твёрдый", "мягкий", "интегральный"),
        features=(
            "Офсетная бумага и качественная печать.",
            "Крупный шрифт, удобно читать.",
            "Подарочное издание.",
            "Бестселлер, переведённый на 20 языков.",
            "Подходит для чтения всей семьёй.",
        ),
        emoji=("📚", "📖", "✨"),
    ),
    "Спорт": _Category(
        brands=("Demix", "Torneo", "Stern", "Larsen", "Mikasa", "Stels", "Outventure", "Atemi", "Wilson"),
        material_label="Материал",
        materials=("резина", "сталь, неопрен", "ТПЭ", "ПВХ", "алюминий", "углеволокно"),
        features=(
            "Подходит для занятий дома и в зале.",
            "Прочные материалы выдерживают интенсивные нагрузки.",
            "Лёгкий и удобный для транспортировки.",
            "Для начинающих и профессионалов.",
        ),
        emoji=("⚽", "💪", "🏆", "🔥"),
    ),
    "Аксессуары": _Category(
        brands=(
            "Fabretti",
            "Eleganzza",
            "Pierre Cardin",
            "Galanteya",
            "Зонтофф",
            "Mr.Bag",
            "Polar",
            "Ray Flector",
            "Тайга",
        ),
        material_label="Материал",
        materials=("натуральная кожа", "экокожа", "текстиль", "металл, пластик", "полиэстер"),
        features=(
            "Прочная фурнитура и аккуратные швы.",
            "Вместительная и лёгкая модель.",
            "Стильный аксессуар на каждый день.",
            "Поставляется в фирменной коробке.",
        ),
        emoji=("👜", "🕶️", "✨", "💯"),
    ),
    "Товары для курения": _Category(
        brands=("Alpha Hookah", "Khmara", "Darkside", "MustHave", "Сарма", "Element", "HQD", "Mattpear"),
        material_label="Материал",
        materials=("нержавеющая сталь, стекло", "пластик", "силикон", "алюминий"),
        features=(
            "Товар только для лиц старше 18 лет.",
            "Продажа несовершеннолетним запрещена.",
            "Насыщенный вкус и густой пар.",
            "Проверено перед отправкой.",
        ),
        emoji=("💨", "🔥", "😎"),
        weight=0.7,
        adult=True,
    ),
    "Товары для взрослых": _Category(
        brands=("Erolanta", "Биоритм", "Candy Girl", "Sitabella", "Джага-Джага", "Eroticon"),
        material_label="Материал",
        materials=("кружево, эластан", "сетка, полиамид", "на водной основе", "силикон"),
        features=(
            "Товар 18+.",
            "Анонимная упаковка без опознавательных знаков.",
            "Гипоаллергенные материалы.",
            "Сертифицированная продукция.",
        ),
        emoji=("🔞", "❤️", "✨"),
        weight=0.6,
        adult=True,
    ),
}

_GADGET_COLOURS = ("чёрный", "белый", "серый", "синий", "зелёный", "розовый", "фиолетовый")

_SUBS: dict[str, _SubCategory] = {
    # Одежда
    "Платья": _SubCategory(
        "Одежда",
        (("платье", "n"), ("сарафан", "m")),
        2500,
        _dress,
        ("летний", "вечерний", "повседневный", "праздничный", "офисный", "трикотажный"),
        ("миди", "макси", "мини", "с поясом"),
        "dress",
    ),
    "Футболки": _SubCategory(
        "Одежда",
        (("футболка", "f"), ("майка", "f")),
        900,
        _tshirt,
        ("базовый", "хлопковый", "летний", "спортивный"),
        ("оверсайз", "с принтом", "с круглым вырезом"),
        "clothes",
    ),
    "Рубашки": _SubCategory(
        "Одежда",
        (("рубашка", "f"), ("сорочка", "f")),
        2200,
        _shirt,
        ("классический", "офисный", "льняной", "приталенный"),
        ("с длинным рукавом", "на пуговицах"),
        "clothes",
    ),
    "Худи": _SubCategory(
        "Одежда",
        (("худи", "n"), ("толстовка", "f")),
        2800,
        _hoodie,
        ("тёплый", "спортивный", "утеплённый", "хлопковый"),
        ("с капюшоном", "оверсайз", "с начёсом"),
        "clothes",
    ),
    "Свитеры": _SubCategory(
        "Одежда",
        (("свитер", "m"), ("джемпер", "m"), ("пуловер", "m")),
        2600,
        _sweater,
        ("вязаный", "шерстяной", "тёплый", "зимний"),
        ("с высоким горлом", "крупной вязки"),
        "clothes",
    ),
    "Куртки": _SubCategory(
        "Одежда",
        (("куртка", "f"), ("пуховик", "m")),
        6500,
        _jacket,
        ("зимний", "демисезонный", "утеплённый", "стёганый"),
        ("с капюшоном", "на молнии", "до -30"),
        "clothes",
    ),
    "Брюки": _SubCategory(
        "Одежда",
        (("брюки", "pl"), ("штаны", "pl")),
        2300,
        _trousers,
        ("классический", "широкий", "прямой", "спортивный"),
        ("палаццо", "с высокой посадкой", "на резинке"),
        "clothes",
    ),
    "Шорты": _SubCategory(
        "Одежда",
        (("шорты", "pl"),),
        1200,
        _shorts,
        ("летний", "джинсовый", "спортивный", "льняной"),
        ("бермуды", "с карманами"),
        "clothes",
    ),
    "Юбки": _SubCategory(
        "Одежда",
        (("юбка", "f"),),
        1800,
        _skirt,
        ("плиссированный", "летний", "офисный", "джинсовый"),
        ("миди", "макси", "с разрезом"),
        "dress",
    ),
    "Комбинезоны": _SubCategory(
        "Одежда",
        (("комбинезон", "m"),),
        3500,
        _jumpsuit,
        ("утеплённый", "летний", "трикотажный", "зимний"),
        ("на молнии", "с капюшоном"),
        "kidswear",
    ),
    "Носки": _SubCategory(
        "Одежда",
        (("носки", "pl"), ("носочки", "pl")),
        300,
        _socks,
        ("хлопковый", "высокий", "тёплый", "спортивный"),
        ("набор 5 пар", "с рисунком"),
        "clothes",
    ),
    "Шапки": _SubCategory(
        "Одежда",
        (("шапка", "f"), ("шапочка", "f")),
        900,
        _hat,
        ("вязаный", "зимний", "тёплый", "демисезонный"),
        ("с помпоном", "бини"),
        "clothes",
    ),
    # Обувь
    "Кроссовки": _SubCategory(
        "Обувь",
        (("кроссовки", "pl"), ("кеды", "pl")),
        4500,
        _sneakers,
        ("летний", "спортивный", "дышащий", "повседневный"),
        ("на платформе", "для бега"),
        "clothes",
    ),
    "Сапоги": _SubCategory(
        "Обувь",
        (("сапоги", "pl"), ("ботинки", "pl")),
        6500,
        _boots,
        ("зимний", "демисезонный", "утеплённый", "кожаный"),
        ("на меху", "на шнуровке"),
        "clothes",
    ),
    "Туфли": _SubCategory(
        "Обувь",
        (("туфли", "pl"), ("лодочки", "pl")),
        3800,
        _heels,
        ("вечерний", "классический", "офисный", "лаковый"),
        ("на каблуке", "на шпильке"),
        "heels",
    ),
    "Сандалии": _SubCategory(
        "Обувь",
        (("сандалии", "pl"), ("босоножки", "pl")),
        2200,
        _sandals,
        ("летний", "открытый", "кожаный", "лёгкий"),
        ("на липучке", "на плоской подошве"),
        "clothes",
    ),
    "Тапочки": _SubCategory(
        "Обувь",
        (("тапочки", "pl"), ("тапки", "pl")),
        600,
        _slippers,
        ("домашний", "мягкий", "тёплый", "плюшевый"),
        ("с закрытым носом",),
        "clothes",
    ),
    # Детские товары
    "Мягкие игрушки": _SubCategory(
        "Детские товары",
        (("плюшевый мишка", "m"), ("мягкая игрушка-медведь", "f")),
        1200,
        _teddy,
        ("большой", "плюшевый", "мягкий"),
        ("60 см", "30 см"),
        "plush",
    ),
    "Конструкторы": _SubCategory(
        "Детские товары",
        (("конструктор", "m"),),
        2500,
        _brick,
        ("развивающий", "пластиковый", "большой"),
        ("500 деталей", "совместим с Lego"),
        "toys",
    ),
    "Машинки": _SubCategory(
        "Детские товары",
        (("машинка", "f"), ("игрушечная машинка", "f")),
        900,
        _toy_car,
        ("инерционный", "металлический", "радиоуправляемый"),
        ("1:32", "со светом и звуком"),
        "cars",
    ),
    "Куклы": _SubCategory(
        "Детские товары",
        (("кукла", "f"),),
        1800,
        _doll,
        ("шарнирный", "большой", "говорящий"),
        ("с аксессуарами", "30 см"),
        "dolls",
    ),
    "Пирамидки": _SubCategory(
        "Детские товары",
        (("пирамидка", "f"),),
        500,
        _pyramid,
        ("деревянный", "развивающий", "музыкальный"),
        ("для малышей", "6 колец"),
        "baby",
    ),
    # Электроника
    "Смартфоны": _SubCategory(
        "Электроника",
        (("смартфон", "m"), ("телефон", "m")),
        40000,
        _smartphone,
        ("игровой", "мощный"),
        ("128 ГБ", "256 ГБ", "8/256 ГБ", "с NFC"),
        palette=_GADGET_COLOURS,
    ),
    "Наушники": _SubCategory(
        "Электроника",
        (("наушники", "pl"),),
        3500,
        _headphones,
        ("беспроводной", "накладной", "игровой", "полноразмерный"),
        ("с микрофоном", "с шумоподавлением"),
        palette=_GADGET_COLOURS,
    ),
    "Ноутбуки": _SubCategory(
        "Электроника",
        (("ноутбук", "m"),),
        65000,
        _laptop,
        ("игровой", "тонкий", "офисный"),
        ('15.6"', "16 ГБ ОЗУ", "SSD 512 ГБ"),
        palette=("чёрный", "серый", "белый", "синий"),
    ),
    "Умные часы": _SubCategory(
        "Электроника",
        (("умные часы", "pl"), ("смарт-часы", "pl")),
        8000,
        _smartwatch,
        ("водонепроницаемый", "спортивный"),
        ("с пульсометром", "с GPS"),
        "watches",
        _GADGET_COLOURS,
    ),
    "Портативные колонки": _SubCategory(
        "Электроника",
        (("портативная колонка", "f"), ("bluetooth-колонка", "f")),
        4500,
        _speaker,
        ("беспроводной", "мощный", "водонепроницаемый"),
        ("с подсветкой", "20 Вт"),
    ),
    "Геймпады": _SubCategory(
        "Электроника",
        (("геймпад", "m"), ("джойстик", "m")),
        3500,
        _gamepad,
        ("беспроводной", "проводной", "игровой"),
        ("для ПК и PS4", "с вибрацией"),
        palette=_GADGET_COLOURS,
    ),
    # Дом и кухня
    "Кружки": _SubCategory(
        "Дом и кухня",
        (("кружка", "f"), ("чашка", "f")),
        450,
        _mug,
        ("керамический", "большой", "фарфоровый"),
        ("350 мл", "с надписью", "в подарочной упаковке"),
    ),
    "Сковороды": _SubCategory(
        "Дом и кухня",
        (("сковорода", "f"), ("сковородка", "f")),
        2200,
        _frying_pan,
        ("антипригарный", "глубокий", "литой"),
        ("28 см", "24 см", "для индукции"),
        palette=("чёрный", "серый", "красный", "бежевый", "коричневый", "синий"),
    ),
    "Подушки": _SubCategory(
        "Дом и кухня",
        (("подушка", "f"), ("декоративная подушка", "f")),
        1300,
        _pillow,
        ("мягкий", "ортопедический", "декоративный"),
        ("50х70", "40х40"),
    ),
    "Настольные лампы": _SubCategory(
        "Дом и кухня",
        (("настольная лампа", "f"), ("светильник", "m")),
        1900,
        _desk_lamp,
        ("светодиодный", "гибкий", "сенсорный"),
        ("с регулировкой яркости", "для школьника"),
    ),
    "Чайники": _SubCategory(
        "Дом и кухня",
        (("чайник", "m"), ("электрочайник", "m")),
        2800,
        _kettle,
        ("электрический", "стеклянный", "металлический"),
        ("1,7 л", "с подсветкой"),
    ),
    # Красота
    "Помады": _SubCategory(
        "Красота",
        (("помада", "f"), ("губная помада", "f")),
        650,
        _lipstick,
        ("матовый", "стойкий", "увлажняющий"),
        ("для губ", "тон 05"),
        palette=("красный", "розовый", "бордовый", "бежевый", "коричневый", "фиолетовый", "оранжевый"),
    ),
    "Парфюмерия": _SubCategory(
        "Красота",
        (("парфюмерная вода", "f"), ("туалетная вода", "f"), ("духи", "pl")),
        3500,
        _perfume,
        ("стойкий", "цветочный", "древесный"),
        ("50 мл", "100 мл"),
        "perfume",
        colour_of="Цвет флакона",
    ),
    "Кремы для лица": _SubCategory(
        "Красота",
        (("крем для лица", "m"),),
        900,
        _cream_jar,
        ("увлажняющий", "питательный", "ночной", "дневной"),
        ("с гиалуроновой кислотой", "SPF 30"),
        colour_of="Цвет упаковки",
    ),
    "Шампуни": _SubCategory(
        "Красота",
        (("шампунь", "m"),),
        450,
        _shampoo,
        ("бессульфатный", "укрепляющий", "профессиональный"),
        ("для всех типов волос", "400 мл"),
        colour_of="Цвет флакона",
    ),
    "Лаки для ногтей": _SubCategory(
        "Красота",
        (("лак для ногтей", "m"), ("гель-лак", "m")),
        300,
        _nail_polish,
        ("стойкий", "быстросохнущий", "глянцевый"),
        ("10 мл", "тон 12"),
    ),
    # Книги
    "Художественная литература": _SubCategory(
        "Книги",
        (("книга", "f"), ("роман", "m")),
        600,
        _fiction_book,
        ("современный", "классический", "фантастический"),
        ("в твёрдом переплёте", "подарочное издание"),
        colour_of="Цвет обложки",
    ),
    "Детские книги": _SubCategory(
        "Книги",
        (("детская книга", "f"), ("книжка с картинками", "f")),
        450,
        _kids_book,
        ("иллюстрированный", "познавательный"),
        ("сказки на ночь", "с крупными буквами"),
        colour_of="Цвет обложки",
    ),
    "Учебники": _SubCategory(
        "Книги",
        (("учебник", "m"), ("рабочая тетрадь", "f")),
        800,
        _textbook,
        ("школьный", "новый"),
        ("по математике", "по русскому языку", "ФГОС"),
        colour_of="Цвет обложки",
    ),
    # Спорт
    "Мячи": _SubCategory(
        "Спорт",
        (("мяч", "m"),),
        1500,
        _ball,
        ("футбольный", "волейбольный", "баскетбольный"),
        ("размер 5", "профессиональный"),
    ),
    "Гантели": _SubCategory(
        "Спорт",
        (("гантели", "pl"), ("набор гантелей", "m")),
        2500,
        _dumbbell,
        ("разборный", "неопреновый", "чугунный"),
        ("2 шт по 5 кг", "10 кг"),
    ),
    "Коврики для йоги": _SubCategory(
        "Спорт",
        (("коврик для йоги", "m"), ("коврик для фитнеса", "m")),
        1300,
        _yoga_mat,
        ("нескользящий", "толстый", "спортивный"),
        ("183х61 см", "6 мм"),
    ),
    "Велосипеды": _SubCategory(
        "Спорт",
        (("велосипед", "m"),),
        22000,
        _bicycle,
        ("горный", "городской", "складной", "скоростной"),
        ('26"', "21 скорость"),
        "bikes",
    ),
    "Теннисные ракетки": _SubCategory(
        "Спорт",
        (("ракетка для тенниса", "f"), ("теннисная ракетка", "f")),
        4000,
        _racket,
        ("профессиональный", "лёгкий", "карбоновый"),
        ("с чехлом",),
    ),
    # Аксессуары
    "Сумки": _SubCategory(
        "Аксессуары",
        (("сумка", "f"), ("сумка через плечо", "f")),
        3500,
        _bag,
        ("кожаный", "вместительный", "повседневный"),
        ("тоут", "кросс-боди", "с длинным ремнём"),
        "bags",
    ),
    "Рюкзаки": _SubCategory(
        "Аксессуары",
        (("рюкзак", "m"),),
        2800,
        _backpack,
        ("городской", "школьный", "вместительный"),
        ("для ноутбука", "с USB-портом"),
        "backpacks",
    ),
    "Солнцезащитные очки": _SubCategory(
        "Аксессуары",
        (("солнцезащитные очки", "pl"), ("очки солнцезащитные", "pl")),
        1200,
        _sunglasses,
        ("поляризационный", "модный"),
        ("UV400", "кошачий глаз", "авиаторы"),
        "glasses",
    ),
    "Ремни": _SubCategory(
        "Аксессуары",
        (("ремень", "m"), ("пояс", "m")),
        1100,
        _belt,
        ("кожаный", "классический", "тонкий"),
        ("с пряжкой", "для джинсов"),
        "belts",
        ("чёрный", "коричневый", "бежевый", "белый", "красный", "серый"),
    ),
    "Зонты": _SubCategory(
        "Аксессуары",
        (("зонт", "m"), ("зонтик", "m")),
        1500,
        _umbrella,
        ("складной", "автоматический", "ветроустойчивый"),
        ("трость", "3 сложения"),
        "umbrellas",
    ),
    # Товары для курения (18+)
    "Кальяны": _SubCategory(
        "Товары для курения",
        (("кальян", "m"),),
        6000,
        _hookah,
        ("стеклянный", "большой", "компактный"),
        ("на 2 персоны", "в сборе"),
    ),
    "Электронные сигареты": _SubCategory(
        "Товары для курения",
        (("электронная сигарета", "f"), ("вейп", "m"), ("POD-система", "f")),
        1500,
        _vape,
        ("одноразовый", "многоразовый", "компактный"),
        ("1500 затяжек", "с регулировкой мощности"),
    ),
    "Табак для кальяна": _SubCategory(
        "Товары для курения",
        (("табак для кальяна", "m"), ("кальянная смесь", "f")),
        900,
        _tobacco_pouch,
        ("фруктовый", "мятный", "крепкий"),
        ("50 г", "200 г"),
        colour_of="Цвет упаковки",
    ),
    # Товары для взрослых (18+)
    "Эротическое бельё": _SubCategory(
        "Товары для взрослых",
        (("эротический комплект белья", "m"), ("кружевной бюстгальтер", "m")),
        2200,
        _lingerie,
        ("кружевной", "прозрачный", "соблазнительный"),
        ("с поясом", "18+"),
        "lingerie",
        ("чёрный", "красный", "белый", "бордовый", "розовый"),
    ),
    "Интимная косметика": _SubCategory(
        "Товары для взрослых",
        (("интимный гель", "m"), ("массажное масло", "n")),
        800,
        _pump_bottle,
        ("увлажняющий", "согревающий", "ароматный"),
        ("100 мл", "на водной основе"),
        colour_of="Цвет флакона",
    ),
}

SUB_CATEGORIES: dict[str, str] = {name: sub.category for name, sub in _SUBS.items()}
ADULT_CATEGORIES: frozenset[str] = frozenset(name for name, cat in _CATEGORIES.items() if cat.adult)

# Audience: w / m women, men; g / b girls, boys; k children of either sex; u unstated (no gender words).
_AUDIENCE_MIXES: dict[str, dict[str, float]] = {
    "clothes": {"w": 0.34, "m": 0.26, "g": 0.1, "b": 0.1, "k": 0.08, "u": 0.12},
    "dress": {"w": 0.65, "g": 0.23, "u": 0.12},
    "heels": {"w": 0.72, "g": 0.16, "u": 0.12},
    "kidswear": {"k": 0.3, "g": 0.15, "b": 0.15, "w": 0.18, "m": 0.1, "u": 0.12},
    "plush": {"k": 0.4, "g": 0.2, "u": 0.4},
    "toys": {"b": 0.3, "g": 0.2, "k": 0.3, "u": 0.2},
    "cars": {"b": 0.5, "k": 0.3, "u": 0.2},
    "dolls": {"g": 0.6, "k": 0.2, "u": 0.2},
    "baby": {"k": 0.6, "u": 0.4},
    "watches": {"w": 0.2, "m": 0.2, "k": 0.15, "u": 0.45},
    "perfume": {"w": 0.55, "m": 0.3, "u": 0.15},
    "bikes": {"m": 0.2, "w": 0.15, "g": 0.15, "b": 0.15, "k": 0.1, "u": 0.25},
    "bags": {"w": 0.6, "m": 0.15, "u": 0.25},
    "backpacks": {"w": 0.2, "m": 0.2, "g": 0.12, "b": 0.12, "k": 0.1, "u": 0.26},
    "glasses": {"w": 0.4, "m": 0.3, "u": 0.3},
    "belts": {"m": 0.55, "w": 0.25, "u": 0.2},
    "umbrellas": {"w": 0.3, "m": 0.2, "k": 0.1, "u": 0.4},
    "lingerie": {"w": 1.0},
    "none": {"u": 1.0},
}

# (gender adjective, phrase after the noun) options per audience, most common first.
_AUDIENCE_WORDS: dict[str, tuple[tuple[str | None, str | None], ...]] = {
    "w": (("женский", None), (None, "для женщин")),
    "m": (("мужской", None), (None, "для мужчин")),
    "g": ((None, "для девочки"), (None, "для девочек"), ("детский", "для девочки")),
    "b": ((None, "для мальчика"), (None, "для мальчиков"), ("детский", "для мальчика")),
    "k": (("детский", None), (None, "для детей"), (None, "для малышей")),
    "u": ((None, None),),
}
_AUDIENCE_SENTENCES: dict[str, tuple[str, ...]] = {
    "w": (
        "Подойдёт женщинам любого возраста.",
        "Отличный подарок для девушки или женщины.",
        "Женская модель стандартной посадки.",
    ),
    "m": (
        "Подойдёт мужчинам любого возраста.",
        "Отличный подарок для мужчины.",
        "Мужская модель классической посадки.",
    ),
    "g": (
        "Модель для девочек от 3 до 12 лет.",
        "Понравится вашей дочке.",
        "Удобная вещь для девочки в садик и школу.",
    ),
    "b": (
        "Модель для мальчиков от 3 до 12 лет.",
        "Понравится вашему сыну.",
        "Удобная вещь для мальчика в садик и школу.",
    ),
    "k": (
        "Подходит детям от 3 лет.",
        "Детская модель из безопасных материалов.",
        "Для малышей и детей постарше.",
    ),
}

_COLOURS: dict[str, tuple[int, int, int]] = {
    "красный": (200, 32, 38),
    "синий": (32, 64, 172),
    "чёрный": (28, 28, 30),
    "белый": (242, 242, 240),
    "зелёный": (42, 142, 64),
    "жёлтый": (238, 204, 42),
    "розовый": (238, 142, 172),
    "серый": (128, 128, 134),
    "бежевый": (214, 190, 152),
    "коричневый": (118, 74, 42),
    "голубой": (112, 182, 232),
    "фиолетовый": (118, 62, 162),
    "оранжевый": (240, 130, 34),
    "бордовый": (118, 22, 42),
}

_PRAISE = (
    "стильное решение на каждый день",
    "отличный выбор по доступной цене",
    "качество, проверенное тысячами покупателей",
    "прекрасный вариант для подарка",
    "новинка этого сезона",
    "практичная вещь, которая прослужит долго",
    "продуманные детали и безупречное исполнение",
)
_OPENERS = (
    "{np} от {brand} — {praise}.",
    "{Praise}: {np} от бренда {brand}.",
    "{Np} {brand}. {Praise}!",
    "Представляем новинку от {brand}: {np}.",
)
_CAPS = (
    "ХИТ ПРОДАЖ!",
    "НОВИНКА!",
    "СКИДКА ТОЛЬКО СЕГОДНЯ!",
    "ОРИГИНАЛЬНОЕ КАЧЕСТВО!",
    "БЫСТРАЯ ДОСТАВКА!",
    "ЛУЧШАЯ ЦЕНА!",
    "100% ОРИГИНАЛ",
)
_SEPARATORS = (" ", " ", " ", "  ", "\n", "\n\n", "<br>", "<br/>", " <br> ", "\r\n")
_BLANK_TITLES = ("", " ", "   ", "\t")
_CHILD_AUDIENCES = frozenset("gbk")
_SEASONAL = frozenset(("летний", "зимний", "демисезонный", "утеплённый", "тёплый", "лёгкий", "открытый"))

# ----------------------------------------------------------------------------------------------------------
# Text generation.


def _decline(adjective: str, gender: str) -> str:
    """Agree a masculine nominative adjective with a noun of grammatical gender m / f / n / pl."""
    stem, ending = adjective[:-2], adjective[-2:]
    if gender == "m" or ending not in ("ый", "ий", "ой"):
        return adjective
    last = stem[-1]
    if ending == "ий" and last not in "гкхжшщч":  # soft stem: летний, синий
        return stem + {"f": "яя", "n": "ее", "pl": "ие"}[gender]
    neuter = "ее" if ending == "ий" and last in "жшщч" else "ое"
    plural = "ие" if last in "гкхжшщч" else "ые"
    return stem + {"f": "ая", "n": neuter, "pl": plural}[gender]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _spell_yo_as_e(text: str, rng: random.Random) -> str:
    return text.replace("ё", "е").replace("Ё", "Е") if rng.random() < 0.3 else text


@dataclass
class _Card:
    key: int  # unique per listing; seeds the listing's photo
    sub_category: str
    audience: str
    brand: str
    colour: str
    attributes: tuple[str, ...]
    extra: str | None
    material: str
    price: float
    object_seed: int  # identity of the physical object: shape details and exact colour
    sizes: str
    dup_group: int = -1
    title: str = ""
    description: str = ""
    nm: int = 0
    has_photo: bool = True


def _audience_words(audience: str, rng: random.Random) -> tuple[str | None, str | None]:
    options = _AUDIENCE_WORDS[audience]
    return rng.choices(options, weights=[3] + [1] * (len(options) - 1))[0]


def _title(card: _Card, rng: random.Random) -> str:
    sub = _SUBS[card.sub_category]
    noun, gram = rng.choice(sub.nouns)
    gender_adj, gender_phrase = _audience_words(card.audience, rng)
    gender_adj = gender_adj and _decline(gender_adj, gram)
    attributes = [_decline(a, gram) for a in rng.sample(card.attributes, len(card.attributes))]
    colour = _decline(card.colour, gram) if sub.colour_of is None and rng.random() < 0.6 else None
    extra = card.extra if rng.random() < 0.8 else None
    style = rng.choices(
        ("after", "before", "brand"), weights=(4, 2, 3 if sub.category == "Электроника" else 1)
    )[0]
    if style == "after":  # "Платье женское летнее красное миди"
        words = [noun, gender_adj, *attributes, colour, gender_phrase, extra]
    elif style == "before":  # "Женское летнее красное платье миди"
        words = [gender_adj, *attributes, colour, noun, gender_phrase, extra]
    else:  # "Кроссовки Kari мужские летние белые"
        words = [noun, card.brand, gender_adj, *attributes, gender_phrase, extra, colour]
    return _spell_yo_as_e(_capitalise(" ".join(w for w in words if w)), rng)


def _sizes(sizing: str | None, audience: str, rng: random.Random) -> str:
    if sizing is None:
        return ""
    if audience in _CHILD_AUDIENCES:
        low = rng.randrange(86, 128, 6) if sizing == "clothes" else rng.randint(22, 30)
        high = low + rng.randrange(12, 36, 6) if sizing == "clothes" else low + rng.randint(3, 7)
        return f"Рост: {low}–{high} см." if sizing == "clothes" else f"Размеры: {low}–{high}."
    if sizing == "clothes":
        if audience == "u":
            return "Размеры: " + ", ".join(rng.sample(("XS", "S", "M", "L", "XL", "XXL"), 4)) + "."
        low = rng.randrange(40, 48, 2) if audience == "w" else rng.randrange(44, 52, 2)
        return f"Размеры: {low}–{low + rng.randrange(6, 12, 2)}."
    low = {"w": 35, "m": 39}.get(audience, 36) + rng.randint(0, 2)
    return f"Размеры: {low}–{low + rng.randint(3, 6)}."


def _description(card: _Card, rng: random.Random) -> str:
    if rng.random() < 0.05:
        return ""
    sub = _SUBS[card.sub_category]
    category = _CATEGORIES[sub.category]
    noun, gram = rng.choice(sub.nouns)
    gender_adj, gender_phrase = _audience_words(card.audience, rng)
    words = [
        gender_adj and _decline(gender_adj, gram),
        _decline(rng.choice(card.attributes), gram),
        noun,
        gender_phrase,
    ]
    noun_phrase = " ".join(w for w in words if w)
    brand = rng.choice((card.brand, card.brand, f"«{card.brand}»", f"&quot;{card.brand}&quot;"))
    praise = rng.choice(_PRAISE)
    opener = rng.choice(_OPENERS).format(
        np=noun_phrase, Np=_capitalise(noun_phrase), brand=brand, praise=praise, Praise=_capitalise(praise)
    )
    body = [
        f"{sub.colour_of}: {card.colour}."
        if sub.colour_of
        else rng.choice(("Цвет: {}.", "Цвет — {}.", "Оттенок: {}.", "Цвет {}.")).format(card.colour),
        f"{category.material_label}: {card.material}.",
        *rng.sample(category.features, 2),
    ]
    if card.audience != "u":
        body.append(rng.choice(_AUDIENCE_SENTENCES[card.audience]))
    if card.sizes:
        body.append(card.sizes)
    if category.sizing == "clothes" and rng.random() < 0.5:
        body.append(rng.choice(_CLOTHES_CARE))
    rng.shuffle(body)
    sentences = [_capitalise(opener), *body]
    if rng.random() < 0.5:
        caps = rng.choice(_CAPS)
        sentences.insert(rng.randint(0, len(sentences)), f"<b>{caps}</b>" if rng.random() < 0.4 else caps)
    if rng.random() < 0.5:
        emoji = "".join(rng.choices(category.emoji, k=rng.randint(1, 3)))
        i = rng.randrange(len(sentences))
        sentences[i] = f"{emoji} {sentences[i]}" if rng.random() < 0.5 else f"{sentences[i]} {emoji}"
    return _spell_yo_as_e(_noisy_join(sentences, rng), rng)


def _noisy_join(sentences: list[str], rng: random.Random) -> str:
    text = sentences[0]
    for sentence in sentences[1:]:
        text += rng.choice(_SEPARATORS) + sentence
    nbsp, repeated = rng.choice((0.0, 0.0, 0.15)), rng.choice((0.0, 0.0, 0.1))
    if nbsp or repeated:
        gaps = (
            rng.choices(("&nbsp;", "  ", "   ", " "), weights=(nbsp, repeated, repeated / 2, 1.0))[0]
            for _ in range(text.count(" "))
        )
        text = "".join(piece + next(gaps, "") for piece in text.split(" "))
    if rng.random() < 0.2:
        text = f"<p>{text}</p>"
    if rng.random() < 0.1:
        text = rng.choice((" ", "\n", "  ")) + text + rng.choice((" ", "\n", ""))
    return text


def _round_price(raw: float, rng: random.Random) -> float:
    if rng.random() < 0.6:  # "…9" pricing: 2489, 39 999
        step = 100 if raw >= 10_000 else 10
        return float(max(1, round(raw / step)) * step - 1)
    return float(max(1, round(raw)))


def _attributes(adjectives: tuple[str, ...], rng: random.Random) -> tuple[str, ...]:
    """One or two adjectives, never two seasonal ones ("летний утеплённый")."""
    first, second = rng.sample(adjectives, 2)
    if rng.random() < 0.5 or (first in _SEASONAL and second in _SEASONAL):
        return (first,)
    return first, second


def _new_card(key: int, rng: random.Random) -> _Card:
    names = list(_SUBS)
    weights = [_CATEGORIES[_SUBS[name].category].weight for name in names]
    name = rng.choices(names, weights=weights)[0]
    sub = _SUBS[name]
    category = _CATEGORIES[sub.category]
    mix = _AUDIENCE_MIXES[sub.audiences]
    audience = rng.choices(list(mix), weights=list(mix.values()))[0]
    return _Card(
        key=key,
        sub_category=name,
        audience=audience,
        brand=rng.choice(category.brands),
        colour=rng.choice(sub.palette or tuple(_COLOURS)),
        attributes=_attributes(sub.adjectives, rng),
        extra=rng.choice(sub.extras) if rng.random() < 0.6 else None,
        material=rng.choice(category.materials),
        price=_round_price(sub.median_price * math.exp(rng.gauss(0, 0.35)), rng),
        object_seed=rng.getrandbits(32),
        sizes=_sizes(category.sizing, audience, rng),
    )


def _relisting(original: _Card, key: int, taken_titles: set[str], rng: random.Random) -> _Card:
    """The same product listed again: new key (photo), price within ±5%, reworded title and description."""
    card = replace(original, key=key, price=_round_price(original.price * rng.uniform(0.95, 1.05), rng))
    for _ in range(20):
        card.title = _title(card, rng)
        if card.title not in taken_titles:
            break
    else:
        card.title = (
            f"{original.title} / {card.brand} {rng.choice(('новинка', 'хит', 'в наличии', 'оригинал'))}"
        )
    card.description = _description(card, rng)
    return card


# ----------------------------------------------------------------------------------------------------------
# Photos.

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


def _render_photo(card: _Card, size: int, seed: int) -> Image.Image:
    obj = random.Random(card.object_seed)
    r, g, b = (min(255, max(0, round(c + obj.gauss(0, 8)))) for c in _COLOURS[card.colour])
    colour = (r, g, b)
    parts = _SUBS[card.sub_category].shape(obj)
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


# ----------------------------------------------------------------------------------------------------------
# Assembly.


@dataclass(frozen=True)
class SampleSummary:
    out_dir: Path
    batch_files: list[Path]
    images_dir: Path
    n_products: int  # rows over all batch files, bad rows included
    n_bad_rows: int
    n_dup_groups: int


def _inject_bad_rows(batch: list[_Card], rng: random.Random) -> int:
    """Spoil 3-6 rows that belong to no re-listing group: missing photo, blank title, nm repeated later."""
    n_missing, n_blank, n_repeated = rng.randint(1, 2), rng.randint(1, 2), rng.randint(1, 2)
    clean = [i for i, card in enumerate(batch) if card.dup_group == -1]
    chosen = rng.sample(clean, n_missing + n_blank + 2 * n_repeated)
    for i in chosen[:n_missing]:
        batch[i].has_photo = False
    for i in chosen[n_missing : n_missing + n_blank]:
        batch[i].title = rng.choice(_BLANK_TITLES)
    pairs = chosen[n_missing + n_blank :]
    for first, later in (sorted(pairs[j : j + 2]) for j in range(0, len(pairs), 2)):
        copy, kept = batch[later], batch[first]
        copy.nm, copy.has_photo = kept.nm, False  # the photo under this nm belongs to the kept row
        if copy.title == kept.title:
            copy.title += " новинка"
    return n_missing + n_blank + n_repeated


def _frame(batch: list[_Card]) -> pd.DataFrame:
    subs = [_SUBS[c.sub_category] for c in batch]
    return pd.DataFrame(
        {
            "nm": np.array([c.nm for c in batch], dtype=np.int64),
            "title": [c.title for c in batch],
            "description": [c.description for c in batch],
            "category": [s.category for s in subs],
            "sub_category": [c.sub_category for c in batch],
            "isadult": np.array([_CATEGORIES[s.category].adult for s in subs], dtype=bool),
            "brend": [c.brand for c in batch],
            "color": [c.colour for c in batch],
            "price": np.array([c.price for c in batch], dtype=np.float64),
            "dup_group": np.array([c.dup_group for c in batch], dtype=np.int64),
        }
    )


def generate_sample(
    out_dir: Path,
    n: int = 3000,
    batches: int = 3,
    seed: int = 0,
    image_size: int = 160,
    progress: Callable[[int, int], None] | None = None,
) -> SampleSummary:
    """Write ``n`` product rows split evenly over ``batches`` parquet files, plus their JPEG photos.

    The ``batches`` and ``images`` folders are replaced as a whole, so no file of an earlier run survives.
    """
    if batches < 1 or n < MIN_PRODUCTS_PER_BATCH * batches or seed < 0:
        raise ValueError(
            f"need batches >= 1, n >= {MIN_PRODUCTS_PER_BATCH} per batch and seed >= 0; got {n=}, {batches=}, {seed=}"
        )
    out_dir = Path(out_dir)
    rng = random.Random(seed)

    group_sizes = [rng.choices((2, 3), weights=(3, 1))[0] for _ in range(max(1, round(n * 0.05)))]
    n_originals = n - sum(size - 1 for size in group_sizes)
    cards = [_new_card(key, rng) for key in range(n_originals)]
    for card in cards:
        card.title, card.description = _title(card, rng), _description(card, rng)
    for group, (index, size) in enumerate(
        zip(rng.sample(range(n_originals), len(group_sizes)), group_sizes, strict=True)
    ):
        original = cards[index]
        original.dup_group = group
        taken = {original.title}
        for _ in range(size - 1):
            cards.append(_relisting(original, len(cards), taken, rng))
            taken.add(cards[-1].title)
    rng.shuffle(cards)  # spreads group members over batches
    nm = 10_000_000
    for card in cards:
        nm += rng.randint(1, 40)
        card.nm = nm

    bounds = np.linspace(0, n, batches + 1).round().astype(int)
    batch_cards = [cards[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    n_bad_rows = sum(_inject_bad_rows(batch, rng) for batch in batch_cards)

    photographed = [card for card in cards if card.has_photo]
    with atomic_dir(out_dir / "images") as images_tmp:
        for done, card in enumerate(photographed, start=1):
            _render_photo(card, image_size, seed).save(
                images_tmp / f"{card.nm}.jpg", format="JPEG", quality=90
            )
            if progress is not None and (done % 100 == 0 or done == len(photographed)):
                progress(done, len(photographed))

    with atomic_dir(out_dir / "batches") as batches_tmp:
        for i, batch in enumerate(batch_cards):
            write_parquet(_frame(batch), batches_tmp / f"batch_{i:03d}.parquet")
    return SampleSummary(
        out_dir=out_dir,
        batch_files=[out_dir / "batches" / f"batch_{i:03d}.parquet" for i in range(batches)],
        images_dir=out_dir / "images",
        n_products=n,
        n_bad_rows=n_bad_rows,
        n_dup_groups=len(group_sizes),
    )
