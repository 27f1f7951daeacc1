"""Assembly of the sample catalogue: draw products, re-list some, spoil a few rows, write batches and photos."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mm_pipeline.sample.cards import ProductCard
from mm_pipeline.sample.photos import render_photo
from mm_pipeline.sample.text import size_line, write_description, write_title
from mm_pipeline.sample.vocabulary import (
    AUDIENCE_MIXES,
    BLANK_TITLES,
    CATEGORY_SPECS,
    COLOUR_RGB,
    SEASONAL_ADJECTIVES,
    SUB_CATEGORY_SPECS,
)
from mm_pipeline.storage import atomic_dir, write_parquet

MIN_PRODUCTS_PER_BATCH = 20  # smallest batch generate_sample writes (the CLI checks --n against it)


@dataclass(frozen=True)
class SampleSummary:
    out_dir: Path
    batch_files: list[Path]
    images_dir: Path
    n_products: int  # rows over all batch files, bad rows included
    n_bad_rows: int
    n_dup_groups: int


def _round_price(raw: float, rng: random.Random) -> float:
    if rng.random() < 0.6:  # "…9" pricing: 2489, 39 999
        step = 100 if raw >= 10_000 else 10
        return float(max(1, round(raw / step)) * step - 1)
    return float(max(1, round(raw)))


def _pick_attributes(adjectives: tuple[str, ...], rng: random.Random) -> tuple[str, ...]:
    """One or two adjectives, never two seasonal ones ("летний утеплённый")."""
    first, second = rng.sample(adjectives, 2)
    if rng.random() < 0.5 or (first in SEASONAL_ADJECTIVES and second in SEASONAL_ADJECTIVES):
        return (first,)
    return first, second


def _new_card(key: int, rng: random.Random) -> ProductCard:
    """A new product: sub-category, audience, brand, colour, material, price and sizes; no title yet."""
    names = list(SUB_CATEGORY_SPECS)
    weights = [CATEGORY_SPECS[SUB_CATEGORY_SPECS[name].category].share for name in names]
    name = rng.choices(names, weights=weights)[0]
    sub = SUB_CATEGORY_SPECS[name]
    category = CATEGORY_SPECS[sub.category]
    mix = AUDIENCE_MIXES[sub.audience_mix]
    audience = rng.choices(list(mix), weights=list(mix.values()))[0]
    return ProductCard(
        key=key,
        sub_category=name,
        audience=audience,
        brand=rng.choice(category.brands),
        colour=rng.choice(sub.colours or tuple(COLOUR_RGB)),
        attributes=_pick_attributes(sub.adjectives, rng),
        extra=rng.choice(sub.phrases_after_noun) if rng.random() < 0.6 else None,
        material=rng.choice(category.materials),
        price=_round_price(sub.median_price * math.exp(rng.gauss(0, 0.35)), rng),
        object_seed=rng.getrandbits(32),
        sizes=size_line(category.sizing, audience, rng),
    )


def _relisting(original: ProductCard, key: int, taken_titles: set[str], rng: random.Random) -> ProductCard:
    """The same product listed again: new key (photo), price within ±5%, reworded title and description."""
    card = replace(original, key=key, price=_round_price(original.price * rng.uniform(0.95, 1.05), rng))
    for _ in range(20):
        card.title = write_title(card, rng)
        if card.title not in taken_titles:
            break
    else:
        card.title = (
            f"{original.title} / {card.brand} {rng.choice(('новинка', 'хит', 'в наличии', 'оригинал'))}"
        )
    card.description = write_description(card, rng)
    return card


def _inject_bad_rows(batch: list[ProductCard], rng: random.Random) -> int:
    """Spoil 3-6 rows that belong to no re-listing group: missing photo, blank title, nm repeated later."""
    n_missing, n_blank, n_repeated = rng.randint(1, 2), rng.randint(1, 2), rng.randint(1, 2)
    clean = [i for i, card in enumerate(batch) if card.dup_group == -1]
    chosen = rng.sample(clean, n_missing + n_blank + 2 * n_repeated)
    for i in chosen[:n_missing]:
        batch[i].has_photo = False
    for i in chosen[n_missing : n_missing + n_blank]:
        batch[i].title = rng.choice(BLANK_TITLES)
    pairs = chosen[n_missing + n_blank :]
    for first, later in (sorted(pairs[j : j + 2]) for j in range(0, len(pairs), 2)):
        copy, kept = batch[later], batch[first]
        copy.nm, copy.has_photo = kept.nm, False  # the photo under this nm belongs to the kept row
        if copy.title == kept.title:
            copy.title += " новинка"
    return n_missing + n_blank + n_repeated


def _frame(batch: list[ProductCard]) -> pd.DataFrame:
    subs = [SUB_CATEGORY_SPECS[c.sub_category] for c in batch]
    return pd.DataFrame(
        {
            "nm": np.array([c.nm for c in batch], dtype=np.int64),
            "title": [c.title for c in batch],
            "description": [c.description for c in batch],
            "category": [s.category for s in subs],
            "sub_category": [c.sub_category for c in batch],
            "isadult": np.array([CATEGORY_SPECS[s.category].adult for s in subs], dtype=bool),
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
        card.title, card.description = write_title(card, rng), write_description(card, rng)
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
            render_photo(card, image_size, seed).save(
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
