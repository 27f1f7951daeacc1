"""``ProductCard``: one listing of the sample catalogue while it is being built, before it becomes a parquet row."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProductCard:
    key: int  # unique per listing; seeds the listing's photo
    sub_category: str
    audience: str  # w / m / g / b / k / u, see vocabulary
    brand: str
    colour: str
    attributes: tuple[str, ...]  # one or two adjectives of the sub-category, masculine nominative
    extra: str | None  # a phrase placed after the noun, or none
    material: str
    price: float
    object_seed: int  # identity of the physical object: shape details and exact colour
    sizes: str  # the size sentence of the description, "" for products without sizes
    dup_group: int = -1  # re-listing group, -1 for none
    title: str = ""
    description: str = ""
    nm: int = 0
    has_photo: bool = True
