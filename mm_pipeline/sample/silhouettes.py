"""One silhouette per sub-category, drawn from the primitives in ``shapes``.

Each function takes the object's own ``random.Random`` and varies a few details (a hem length, a number of
studs); a re-listing of a product passes a Random seeded the same way, so it shows the same object. The parts
are painted in order, later over earlier.
"""

from __future__ import annotations

import math
import random

import numpy as np

from mm_pipeline.sample.shapes import (
    Part,
    Point,
    ellipse,
    mirrored,
    polygon,
    polyline,
    rect,
    rounded_rect,
)

# A sleeve's outline on a top's right half, from the shoulder down: (x beyond the body's half-width, y).
_LONG_SLEEVE = ((0.25, -0.55), (0.42, 0.55), (0.2, 0.6), (0.04, -0.3), (0, -0.3))
_SHORT_SLEEVE = ((0.4, -0.45), (0.22, -0.25), (0, -0.42))
_JUMPSUIT_SLEEVE = ((0.3, -0.5), (0.14, -0.35), (0, -0.45))


def _garment(
    w: float,
    neck_y: float,
    collar: Point,
    shoulder_y: float,
    sleeve: tuple[Point, ...],
    below_sleeve: tuple[Point, ...],
) -> Part:
    """A garment in the product colour from its right half: the neckline on the centre line, the collar, the
    shoulder at half-width ``w``, the sleeve, then the outline from the armpit down and back to the centre."""
    sleeve_points = ((w + dx, y) for dx, y in sleeve)
    return mirrored("main", (0, neck_y), collar, (w, shoulder_y), *sleeve_points, *below_sleeve)


def _long_sleeved_top(w: float) -> Part:
    return _garment(w, -0.8, (0.16, -0.9), -0.8, _LONG_SLEEVE, ((w, 0.9), (0, 0.9)))


def _short_sleeved_top(w: float) -> Part:
    return _garment(w, -0.78, (0.16, -0.9), -0.8, _SHORT_SLEEVE, ((w, 0.9), (0, 0.9)))


def dress(rng: random.Random) -> list[Part]:
    hem, waist = rng.uniform(0.55, 0.85), rng.uniform(-0.25, -0.1)
    parts = [mirrored("main", (0, -0.72), (0.14, -0.9), (0.3, -0.9), (0.24, waist), (hem, 0.92), (0, 0.92))]
    if rng.random() < 0.5:
        parts.append(mirrored("main", (0.3, -0.9), (0.5, -0.72), (0.4, -0.6), (0.27, -0.62)))
    return [*parts, polyline("shade", 0.06, (-0.25, waist), (0.25, waist))]


def tshirt(rng: random.Random) -> list[Part]:
    return [_short_sleeved_top(rng.uniform(0.4, 0.5)), ellipse("shade", 0, -0.86, 0.17, 0.08)]


def shirt(rng: random.Random) -> list[Part]:
    buttons = [ellipse("ink", 0, y, 0.03, 0.03) for y in (-0.5, -0.2, 0.1, 0.4, 0.7)]
    collar = [
        polygon("light", (0, -0.7), (0.05 * s, -0.92), (0.22 * s, -0.9), (0.2 * s, -0.68)) for s in (-1, 1)
    ]
    return [
        _long_sleeved_top(rng.uniform(0.38, 0.44)),
        polyline("shade", 0.03, (0, -0.7), (0, 0.9)),
        *collar,
        *buttons,
    ]


def hoodie(rng: random.Random) -> list[Part]:
    return [
        ellipse("shade", 0, -0.82, 0.3, 0.2),
        _long_sleeved_top(rng.uniform(0.44, 0.5)),
        polygon("shade", (-0.3, 0.25), (0.3, 0.25), (0.4, 0.65), (-0.4, 0.65)),
        polyline("light", 0.025, (-0.08, -0.8), (-0.1, -0.4)),
        polyline("light", 0.025, (0.08, -0.8), (0.1, -0.4)),
    ]


def sweater(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.42, 0.48)
    stripes = [rect("light", -w, y, w, y + 0.1) for y in (-0.4, -0.15)]
    return [
        _long_sleeved_top(w),
        rect("shade", -w, 0.75, w, 0.9),
        *stripes,
        ellipse("shade", 0, -0.85, 0.18, 0.07),
    ]


def jacket(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.5, 0.56)
    quilting = [polyline("shade", 0.025, (-w - 0.35, y), (w + 0.35, y)) for y in (-0.45, -0.1, 0.25, 0.6)]
    return [
        _long_sleeved_top(w),
        *quilting,
        polyline("ink", 0.035, (0, -0.85), (0, 0.9)),
        rect("shade", -0.2, -0.95, 0.2, -0.78),
    ]


def trousers(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.4, 0.48)
    return [
        mirrored("main", (0, -0.9), (w, -0.9), (w + 0.08, 0.95), (0.1, 0.95), (0, -0.2)),
        rect("shade", -w, -0.9, w, -0.78),
    ]


def shorts(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.52, 0.6)
    return [
        mirrored("main", (0, -0.55), (w, -0.55), (w + 0.15, 0.4), (0.08, 0.45), (0, -0.05)),
        rect("shade", -w, -0.55, w, -0.42),
    ]


def skirt(rng: random.Random) -> list[Part]:
    hem = rng.uniform(0.7, 0.9)
    pleats = [polyline("shade", 0.025, (x * 0.4, -0.6), (x * hem, 0.8)) for x in (-0.5, 0, 0.5)]
    return [
        polygon("main", (-0.4, -0.6), (0.4, -0.6), (hem, 0.8), (-hem, 0.8)),
        rect("shade", -0.4, -0.75, 0.4, -0.6),
        *pleats,
    ]


def jumpsuit(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.38, 0.44)
    legs = ((w + 0.05, 0.92), (0.1, 0.92), (0, 0.1))
    body = _garment(w, -0.78, (0.15, -0.9), -0.82, _JUMPSUIT_SLEEVE, legs)
    return [body, rect("shade", -w, -0.05, w, 0.05), polyline("ink", 0.03, (0, -0.75), (0, -0.05))]


def socks(rng: random.Random) -> list[Part]:
    toe = rng.uniform(0.75, 0.9)
    return [
        polygon(
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
        rect("shade", -0.35, -0.9, 0.2, -0.72),
        ellipse("shade", -0.26, 0.72, 0.1, 0.16),
    ]


def hat(rng: random.Random) -> list[Part]:
    knit = [polyline("shade", 0.025, (x, 0.05), (x * 0.4, -0.65)) for x in (-0.4, 0, 0.4)]
    parts = [
        ellipse("main", 0, 0.1, 0.7, 0.85, 180, 360),
        *knit,
        rounded_rect("shade", -0.75, 0.05, 0.75, 0.45, 0.08),
    ]
    if rng.random() < 0.6:
        parts.append(ellipse("light", 0, -0.78, 0.2, 0.2))
    return parts


def sneakers(rng: random.Random) -> list[Part]:
    h = rng.uniform(-0.4, -0.28)
    laces = [
        polyline(
            "ink", 0.03, (x, h + 0.12 + (x + 0.2) * 0.7 - 0.08), (x + 0.1, h + 0.12 + (x + 0.2) * 0.7 + 0.06)
        )
        for x in (-0.15, 0.0, 0.15)
    ]
    return [
        polygon(
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
        rounded_rect("white", -0.95, 0.22, 0.95, 0.45, 0.08),
        polyline("shade", 0.06, (-0.55, 0.1), (0.3, -0.02)),
        *laces,
    ]


def boots(rng: random.Random) -> list[Part]:
    top = rng.uniform(-0.95, -0.7)
    return [
        polygon(
            "main",
            (-0.45, top),
            (0.1, top),
            (0.12, 0.15),
            (0.7, 0.35),
            (0.9, 0.55),
            (0.9, 0.75),
            (-0.5, 0.75),
        ),
        rect("ink", -0.52, 0.72, 0.92, 0.84),
        rect("ink", -0.5, 0.8, -0.2, 0.95),
        rect("shade", -0.46, top, 0.11, top + 0.14),
    ]


def heels(rng: random.Random) -> list[Part]:
    heel = rng.uniform(0.75, 0.95)
    body = polygon(
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
    return [body, polygon("ink", (-0.78, 0.18), (-0.62, 0.2), (-0.66, heel), (-0.72, heel))]


def sandals(rng: random.Random) -> list[Part]:
    straps = [
        ellipse("main", x, 0.45, 0.26, rng.uniform(0.35, 0.5), 180, 360, width=0.15)
        for x in (-0.5, 0.05, 0.55)
    ]
    return [polygon("shade", (-0.92, 0.45), (0.92, 0.45), (0.95, 0.62), (-0.95, 0.62)), *straps]


def slippers(rng: random.Random) -> list[Part]:
    """A pair seen from above, toes up: soles in the product colour, contrasting toe caps."""
    cover = rng.uniform(0.4, 0.5)
    parts = []
    for x in (-0.42, 0.42):
        parts += [ellipse("main", x, 0.05, 0.3, 0.88), ellipse("shade", x, -0.4, 0.33, cover, 180, 360)]
        parts.append(rect("shade", x - 0.33, -0.42, x + 0.33, -0.3))
    return parts


def teddy(rng: random.Random) -> list[Part]:
    ear = rng.uniform(0.13, 0.18)
    return [
        ellipse("main", 0, 0.35, 0.5, 0.55),
        *[ellipse("main", 0.45 * s, 0.15, 0.16, 0.3) for s in (-1, 1)],
        *[ellipse("main", 0.33 * s, -0.72, ear, ear) for s in (-1, 1)],
        ellipse("main", 0, -0.4, 0.42, 0.38),
        ellipse("light", 0, -0.28, 0.17, 0.12),
        *[ellipse("ink", 0.15 * s, -0.5, 0.04, 0.05) for s in (-1, 1)],
        ellipse("light", 0, 0.4, 0.25, 0.3),
    ]


def brick(rng: random.Random) -> list[Part]:
    studs = rng.choice((2, 3, 4))
    step = 1.5 / studs
    parts = [rounded_rect("main", -0.85, -0.25, 0.85, 0.55, 0.05), rect("shade", -0.85, 0.4, 0.85, 0.55)]
    for i in range(studs):
        x = -0.75 + step * (i + 0.5)
        parts += [rect("main", x - 0.15, -0.45, x + 0.15, -0.25), ellipse("light", x, -0.45, 0.15, 0.05)]
    return parts


def toy_car(rng: random.Random) -> list[Part]:
    roof = rng.uniform(-0.55, -0.4)
    return [
        polygon(
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
        polygon("light", (-0.2, roof + 0.07), (0.0, roof + 0.07), (0.0, -0.12), (-0.38, -0.12)),
        polygon("light", (0.08, roof + 0.07), (0.3, roof + 0.07), (0.45, -0.12), (0.08, -0.12)),
        *[ellipse("ink", x, 0.3, 0.2, 0.2) for x in (-0.55, 0.55)],
        *[ellipse("metal", x, 0.3, 0.08, 0.08) for x in (-0.55, 0.55)],
    ]


def doll(rng: random.Random) -> list[Part]:
    hem = rng.uniform(0.5, 0.65)
    return [
        *[polyline("skin", 0.08, (0.15 * s, 0.8), (0.15 * s, 0.98)) for s in (-1, 1)],
        *[polyline("skin", 0.07, (0.18 * s, -0.15), (0.45 * s, 0.3)) for s in (-1, 1)],
        polygon("main", (-0.2, -0.2), (0.2, -0.2), (hem, 0.85), (-hem, 0.85)),
        ellipse("shade", 0, -0.58, 0.3, 0.32),
        ellipse("skin", 0, -0.5, 0.24, 0.26),
    ]


def pyramid(rng: random.Random) -> list[Part]:
    rings = rng.choice((4, 5))
    parts = [rect("shade", -0.6, 0.8, 0.6, 0.92), polyline("metal", 0.06, (0, 0.8), (0, -0.85))]
    for i in range(rings):
        y, w = 0.65 - i * 0.3, 0.85 - i * 0.13
        parts.append(ellipse("main" if i % 2 == 0 else "shade", 0, y, w, 0.15))
    return [
        *parts,
        polygon("main", (0, -0.95), (0.2, -0.65 + (5 - rings) * 0.3), (-0.2, -0.65 + (5 - rings) * 0.3)),
    ]


def smartphone(rng: random.Random) -> list[Part]:
    lenses = rng.choice((2, 3))
    return [
        rounded_rect("main", -0.42, -0.9, 0.42, 0.9, 0.12),
        rounded_rect("shade", -0.34, -0.82, -0.02, -0.42, 0.08),
        *[ellipse("ink", -0.18, -0.74 + i * 0.28 / max(1, lenses - 1), 0.07, 0.07) for i in range(lenses)],
    ]


def headphones(rng: random.Random) -> list[Part]:
    cup = rng.uniform(0.28, 0.36)
    return [
        ellipse("main", 0, 0, 0.7, 0.75, 190, 350, width=0.14),
        *[ellipse("main", 0.7 * s, 0.25, 0.2, cup) for s in (-1, 1)],
        *[ellipse("shade", 0.55 * s, 0.25, 0.08, cup - 0.06) for s in (-1, 1)],
    ]


def laptop(rng: random.Random) -> list[Part]:
    top = rng.uniform(-0.75, -0.6)
    return [
        rounded_rect("main", -0.85, top, 0.85, 0.45, 0.05),
        ellipse("light", 0, (top + 0.45) / 2, 0.1, 0.1),
        polygon("shade", (-0.95, 0.45), (0.95, 0.45), (0.85, 0.6), (-0.85, 0.6)),
    ]


def smartwatch(rng: random.Random) -> list[Part]:
    half = rng.uniform(0.36, 0.44)
    return [
        rect("shade", -0.25, -0.95, 0.25, 0.95),
        rounded_rect("main", -half, -half - 0.05, half, half + 0.05, 0.12),
        rounded_rect("ink", -half + 0.16, -half + 0.1, half - 0.16, half - 0.1, 0.05),
    ]


def speaker(rng: random.Random) -> list[Part]:
    r = rng.uniform(0.2, 0.26)
    return [
        rounded_rect("main", -0.9, -0.38, 0.9, 0.38, 0.35),
        *[ellipse("shade", 0.48 * s, 0, r, r) for s in (-1, 1)],
        ellipse("light", 0, -0.22, 0.06, 0.06),
    ]


def gamepad(rng: random.Random) -> list[Part]:
    grip = rng.uniform(0.4, 0.5)
    return [
        *[ellipse("main", 0.5 * s, 0.2, 0.36, grip) for s in (-1, 1)],
        rounded_rect("main", -0.62, -0.35, 0.62, 0.25, 0.2),
        rect("ink", -0.55, -0.1, -0.35, 0.0),
        rect("ink", -0.5, -0.15, -0.4, 0.05),
        *[
            ellipse("light", 0.45 + dx, -0.05 + dy, 0.05, 0.05)
            for dx, dy in ((0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1))
        ],
        *[ellipse("ink", 0.2 * s, 0.2, 0.1, 0.1) for s in (-1, 1)],
    ]


def mug(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.4, 0.5)
    return [
        ellipse("main", w - 0.05, 0.05, 0.3, 0.32, -90, 90, width=0.12),
        rounded_rect("main", -w - 0.1, -0.6, w, 0.75, 0.08),
        ellipse("shade", -0.05, -0.6, w + 0.05, 0.08),
    ]


def frying_pan(rng: random.Random) -> list[Part]:
    r = rng.uniform(0.55, 0.65)
    return [
        rounded_rect("ink", 0.3, -0.08, 0.98, 0.08, 0.05),
        ellipse("main", -0.3, 0, r, r),
        ellipse("shade", -0.3, 0, r - 0.1, r - 0.1),
    ]


def pillow(rng: random.Random) -> list[Part]:
    dent = rng.uniform(0.65, 0.75)
    corners = ((-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85))
    side_middles = ((0, -dent), (dent, 0), (0, dent), (-dent, 0))  # the stuffing pulls each side in
    outline = [point for pair in zip(corners, side_middles, strict=True) for point in pair]
    return [
        polygon("main", *outline),
        polyline("shade", 0.02, (-0.6, -0.6), (0.6, 0.6)),
        ellipse("light", 0, 0, 0.06, 0.06),
    ]


def desk_lamp(rng: random.Random) -> list[Part]:
    flare = rng.uniform(0.6, 0.75)
    return [
        polyline("metal", 0.06, (0, 0.8), (0.05, 0.05)),
        ellipse("shade", 0, 0.82, 0.4, 0.1),
        polygon("main", (-0.25, -0.8), (0.25, -0.8), (flare, 0.05), (-flare, 0.05)),
    ]


def kettle(rng: random.Random) -> list[Part]:
    base = rng.uniform(0.6, 0.7)
    return [
        ellipse("ink", -0.55, 0.1, 0.3, 0.45, 90, 270, width=0.1),
        polygon("main", (0.45, -0.1), (0.9, -0.5), (0.95, -0.42), (0.55, 0.25)),
        polygon("main", (-0.5, -0.45), (0.4, -0.45), (base, 0.75), (-base - 0.05, 0.75)),
        ellipse("shade", -0.05, -0.48, 0.35, 0.08),
        ellipse("ink", -0.05, -0.58, 0.08, 0.06),
        rect("ink", -base - 0.08, 0.75, base + 0.03, 0.88),
    ]


def lipstick(rng: random.Random) -> list[Part]:
    tip = rng.uniform(-0.9, -0.75)
    return [
        polygon("main", (-0.17, 0.0), (-0.17, -0.55), (0.17, tip), (0.17, 0.0)),
        rect("main", -0.25, 0.05, 0.25, 0.9),
        rect("metal", -0.26, -0.05, 0.26, 0.08),
    ]


def perfume(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.45, 0.6)
    return [
        rect("metal", -0.12, -0.5, 0.12, -0.3),
        rounded_rect("shade", -0.22, -0.85, 0.22, -0.5, 0.05),
        rounded_rect("main", -w, -0.35, w, 0.85, 0.12),
        rect("light", -0.25, 0.15, 0.25, 0.4),
    ]


def cream_jar(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.65, 0.8)
    return [
        rounded_rect("main", -w, -0.1, w, 0.6, 0.1),
        rounded_rect("shade", -w - 0.05, -0.45, w + 0.05, -0.1, 0.06),
        ellipse("light", 0, 0.25, 0.25, 0.12),
    ]


def shampoo(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.35, 0.45)
    return [
        rounded_rect("shade", -0.18, -0.9, 0.18, -0.5, 0.04),
        mirrored("main", (0.15, -0.55), (w, -0.35), (w, 0.9)),
        rect("light", -w + 0.1, 0.15, w - 0.1, 0.45),
    ]


def nail_polish(rng: random.Random) -> list[Part]:
    cap = rng.uniform(-0.95, -0.8)
    return [rect("ink", -0.16, cap, 0.16, 0.05), rounded_rect("main", -0.45, 0.0, 0.45, 0.85, 0.15)]


def fiction_book(rng: random.Random) -> list[Part]:
    lines = [polyline("light", 0.05, (-0.3, y), (rng.uniform(0.2, 0.45), y)) for y in (-0.5, -0.36, -0.22)]
    return [
        rect("main", -0.6, -0.85, 0.6, 0.85),
        rect("shade", -0.6, -0.85, -0.45, 0.85),
        *lines,
        polyline("light", 0.03, (-0.2, 0.6), (0.3, 0.6)),
    ]


def kids_book(rng: random.Random) -> list[Part]:
    sun = rng.uniform(0.18, 0.28)
    return [
        rounded_rect("main", -0.75, -0.7, 0.75, 0.7, 0.06),
        ellipse("light", 0.3, -0.25, sun, sun),
        ellipse("shade", -0.2, 0.9, 0.9, 0.45, 180, 360),
        rect("shade", -0.75, 0.45, 0.75, 0.7),
    ]


def textbook(rng: random.Random) -> list[Part]:
    depth = rng.uniform(0.25, 0.35)
    pages = [
        polyline("shade", 0.015, (0.45 + t * depth, -0.6 - t * 0.25), (0.45 + t * depth, 0.9 - t * 0.25))
        for t in (0.3, 0.6)
    ]
    return [
        polygon("light", (-0.65, -0.6), (0.45, -0.6), (0.45 + depth, -0.85), (-0.65 + depth, -0.85)),
        polygon("light", (0.45, -0.6), (0.45 + depth, -0.85), (0.45 + depth, 0.65), (0.45, 0.9)),
        *pages,
        rect("main", -0.65, -0.6, 0.45, 0.9),
        rect("light", -0.45, -0.35, 0.25, -0.1),
    ]


def ball(rng: random.Random) -> list[Part]:
    seam = rng.uniform(0.25, 0.45)
    return [
        ellipse("main", 0, 0, 0.85, 0.85),
        ellipse("shade", 0, 0, seam, 0.85, width=0.05),
        ellipse("shade", 0, 0, 0.85, 0.3, 0, 180, width=0.05),
    ]


def dumbbell(rng: random.Random) -> list[Part]:
    plate = rng.uniform(0.35, 0.5)
    return [
        rect("metal", -0.85, -0.06, 0.85, 0.06),
        *[rounded_rect("main", a, -plate, b, plate, 0.06) for a, b in ((-0.72, -0.32), (0.32, 0.72))],
        *[rect("shade", a, -0.05, b, 0.05) for a, b in ((-0.32, -0.25), (0.25, 0.32))],
    ]


def yoga_mat(rng: random.Random) -> list[Part]:
    r = rng.uniform(0.25, 0.32)
    return [
        polygon("main", (-0.85, r), (0.6, r), (0.8, r + 0.3), (-0.7, r + 0.3)),
        rect("main", -0.85, -r, 0.6, r),
        ellipse("shade", 0.6, 0, 0.16, r),
        ellipse("main", 0.6, 0, 0.1, r * 0.65, width=0.03),
    ]


def bicycle(rng: random.Random) -> list[Part]:
    r = rng.uniform(0.33, 0.4)
    return [
        *[ellipse("ink", x, 0.4, r, r, width=0.07) for x in (-0.55, 0.55)],
        polyline("main", 0.12, (-0.55, 0.4), (-0.1, 0.4), (0.35, -0.25), (-0.25, -0.25), (-0.55, 0.4)),
        polyline("main", 0.12, (-0.1, 0.4), (-0.3, -0.4)),
        polyline("main", 0.1, (0.35, -0.25), (0.55, 0.4)),
        rect("ink", -0.45, -0.5, -0.15, -0.4),
        polyline("ink", 0.06, (0.3, -0.45), (0.5, -0.5)),
    ]


def racket(rng: random.Random) -> list[Part]:
    head = rng.uniform(0.5, 0.6)
    strings = [
        polyline(
            "light",
            0.015,
            (x, -0.35 - head * 0.9 * math.sqrt(1 - (x / 0.45) ** 2)),
            (x, -0.35 + head * 0.9 * math.sqrt(1 - (x / 0.45) ** 2)),
        )
        for x in (-0.24, -0.08, 0.08, 0.24)
    ]
    return [
        rect("main", -0.07, 0.15, 0.07, 0.95),
        rect("shade", -0.08, 0.6, 0.08, 0.95),
        *strings,
        ellipse("main", 0, -0.35, 0.45, head, width=0.1),
    ]


def bag(rng: random.Random) -> list[Part]:
    flare = rng.uniform(0.85, 0.95)
    return [
        ellipse("shade", 0, -0.2, 0.45, 0.55, 180, 360, width=0.08),
        polygon("main", (-0.75, -0.2), (0.75, -0.2), (flare, 0.8), (-flare, 0.8)),
        polyline("shade", 0.03, (-0.75, 0.2), (0.75, 0.2)),
        rect("metal", -0.08, 0.15, 0.08, 0.3),
    ]


def backpack(rng: random.Random) -> list[Part]:
    pocket = rng.uniform(0.3, 0.45)
    return [
        ellipse("shade", 0, -0.7, 0.18, 0.18, 180, 360, width=0.06),
        rounded_rect("main", -0.6, -0.7, 0.6, 0.9, 0.25),
        rounded_rect("shade", -pocket, 0.25, pocket, 0.75, 0.1),
        ellipse("ink", 0, -0.1, 0.45, 0.45, 200, 340, width=0.03),
    ]


def sunglasses(rng: random.Random) -> list[Part]:
    ry = rng.uniform(0.22, 0.32)
    return [
        *[polyline("ink", 0.05, (0.8 * s, -0.1), (0.98 * s, -0.25)) for s in (-1, 1)],
        *[ellipse("main", 0.45 * s, 0, 0.36, ry) for s in (-1, 1)],
        *[ellipse("ink", 0.45 * s, 0, 0.36, ry, width=0.05) for s in (-1, 1)],
        ellipse("ink", 0, -0.02, 0.1, 0.06, 180, 360, width=0.05),
    ]


def belt(rng: random.Random) -> list[Part]:
    coils = [ellipse("main", 0, 0, r, r, width=0.15) for r in (0.78, 0.56, 0.34)]
    return [
        *coils,
        rect("main", 0.2, 0.65, 0.95, 0.85),
        ellipse("metal", 0.62, -0.62, 0.16, rng.uniform(0.18, 0.24), width=0.06),
    ]


def umbrella(rng: random.Random) -> list[Part]:
    scallops = rng.choice((4, 5, 6))
    xs = np.linspace(0.95, -0.95, scallops * 2 + 1)
    scalloped_edge = [(x, 0.0 if i % 2 == 0 else -0.12) for i, x in enumerate(xs)]
    canopy = np.vstack([ellipse("main", 0, 0, 0.95, 0.75, 180, 360)[1], scalloped_edge])
    ribs = [polyline("shade", 0.02, (0, -0.75), (x, 0.0)) for x in xs[2:-1:2]]
    return [
        polyline("ink", 0.05, (0, -0.85), (0, 0.75)),
        ellipse("ink", -0.12, 0.75, 0.12, 0.12, 0, 180, width=0.05),
        ("main", canopy, 0.0),
        *ribs,
    ]


def hookah(rng: random.Random) -> list[Part]:
    vase = rng.uniform(0.42, 0.52)
    return [
        polyline("ink", 0.05, (0.06, -0.25), (0.5, -0.3), (0.75, 0.0), (0.8, 0.6), (0.7, 0.85)),
        rect("metal", -0.06, -0.6, 0.06, 0.2),
        ellipse("metal", 0, -0.5, 0.25, 0.05),
        polygon("shade", (-0.18, -0.85), (0.18, -0.85), (0.08, -0.6), (-0.08, -0.6)),
        ellipse("main", 0, 0.45, vase, 0.45),
    ]


def vape(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.25, 0.32)
    return [
        rounded_rect("ink", -0.16, -0.95, 0.16, -0.55, 0.06),
        rounded_rect("main", -w, -0.65, w, 0.95, 0.14),
        rounded_rect("light", -0.12, -0.45, 0.12, -0.1, 0.04),
        ellipse("ink", 0, 0.3, 0.05, 0.05),
    ]


def tobacco_pouch(rng: random.Random) -> list[Part]:
    teeth = rng.choice((6, 8, 10))
    xs = np.linspace(-0.6, 0.6, teeth + 1)
    zigzag = [(x, -0.75 if i % 2 == 0 else -0.85) for i, x in enumerate(xs)]
    return [
        polygon("main", (0.65, 0.9), (-0.65, 0.9), *zigzag),
        polyline("shade", 0.04, (-0.6, -0.55), (0.6, -0.55)),
        ellipse("light", 0, 0.2, 0.25, 0.18),
    ]


def lingerie(rng: random.Random) -> list[Part]:
    cup = rng.uniform(0.35, 0.45)
    return [
        *[polyline("shade", 0.04, (0.6 * s, -0.15), (0.45 * s, -0.9)) for s in (-1, 1)],
        *[ellipse("main", 0.38 * s, 0.05, 0.38, cup, 180, 360) for s in (-1, 1)],
        rect("main", -0.85, 0.05, 0.85, 0.22),
        ellipse("light", 0, 0.02, 0.07, 0.05),
    ]


def pump_bottle(rng: random.Random) -> list[Part]:
    w = rng.uniform(0.3, 0.4)
    return [
        rect("ink", -0.15, -0.45, 0.15, -0.3),
        rect("ink", -0.1, -0.75, 0.1, -0.45),
        rect("ink", 0.1, -0.75, 0.45, -0.67),
        rounded_rect("main", -w, -0.3, w, 0.9, 0.1),
    ]
