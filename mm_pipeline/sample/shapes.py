"""Drawing primitives for the silhouettes, in unit coordinates.

A ``Part`` is ``(paint, points, line_width)``: ``paint`` names a colour role that ``photos`` resolves against the
product colour ("main", "shade", "light", "ink", "metal", "skin", "white"); ``points`` is an ``(n, 2)`` array with
x to the right and y down, both within [-1, 1]; ``line_width`` 0 means a filled polygon, anything larger an open
polyline of that width.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np

Part = tuple[str, np.ndarray, float]
Point = tuple[float, float]
Silhouette = Callable[[random.Random], list[Part]]  # draws one object; the Random varies its details


def polygon(paint: str, *points: Point) -> Part:
    return paint, np.array(points, dtype=float), 0.0


def polyline(paint: str, width: float, *points: Point) -> Part:
    return paint, np.array(points, dtype=float), width


def rect(paint: str, x0: float, y0: float, x1: float, y1: float) -> Part:
    return polygon(paint, (x0, y0), (x1, y0), (x1, y1), (x0, y1))


def ellipse(
    paint: str, cx: float, cy: float, rx: float, ry: float, a0: float = 0, a1: float = 360, width: float = 0.0
) -> Part:
    """Filled ellipse (or sector between angles a0..a1 in degrees), or its outline arc when width > 0."""
    t = np.radians(np.linspace(a0, a1, 32))
    return paint, np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)]), width


def rounded_rect(paint: str, x0: float, y0: float, x1: float, y1: float, r: float) -> Part:
    corners = ((x1 - r, y0 + r, 270), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180))
    t = np.radians(np.linspace(0, 90, 6))
    pts = [
        np.column_stack([cx + r * np.cos(t + math.radians(a)), cy + r * np.sin(t + math.radians(a))])
        for cx, cy, a in corners
    ]
    return paint, np.vstack(pts), 0.0


def mirrored(paint: str, *right: Point) -> Part:
    """Polygon symmetric about x=0, given its right half from top to bottom."""
    pts = np.array(right, dtype=float)
    return paint, np.vstack([pts, pts[::-1] * (-1, 1)]), 0.0
