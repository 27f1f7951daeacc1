"""Titles and descriptions of a product card, in Russian, with the noise of a real marketplace.

Gender and age appear only here, as words (женский, для девочки, детский, ...). A description mixes an opening
line, colour, material, two feature sentences, an audience sentence and sizes in random order, then adds
marketplace noise: HTML tags and entities, emoji, shouted phrases, odd whitespace and ``ё`` written as ``е``;
about 5% of descriptions are empty.
"""

from __future__ import annotations

import random

from mm_pipeline.sample.cards import ProductCard
from mm_pipeline.sample.vocabulary import (
    AUDIENCE_SENTENCES,
    AUDIENCE_WORDS,
    CATEGORY_SPECS,
    CHILD_AUDIENCES,
    CLOTHES_CARE,
    DESCRIPTION_OPENERS,
    PRAISE,
    SENTENCE_SEPARATORS,
    SHOUTED_PHRASES,
    SUB_CATEGORY_SPECS,
)


def decline(adjective: str, gender: str) -> str:
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


def _audience_words(audience: str, rng: random.Random) -> tuple[str | None, str | None]:
    options = AUDIENCE_WORDS[audience]
    return rng.choices(options, weights=[3] + [1] * (len(options) - 1))[0]


def write_title(card: ProductCard, rng: random.Random) -> str:
    sub = SUB_CATEGORY_SPECS[card.sub_category]
    noun, gram = rng.choice(sub.nouns)
    gender_adj, gender_phrase = _audience_words(card.audience, rng)
    gender_adj = gender_adj and decline(gender_adj, gram)
    attributes = [decline(a, gram) for a in rng.sample(card.attributes, len(card.attributes))]
    colour = decline(card.colour, gram) if sub.colour_label is None and rng.random() < 0.6 else None
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


def size_line(sizing: str | None, audience: str, rng: random.Random) -> str:
    """The description's size sentence for ``sizing`` "clothes" or "shoes" (children get heights), else ""."""
    if sizing is None:
        return ""
    if audience in CHILD_AUDIENCES:
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


def write_description(card: ProductCard, rng: random.Random) -> str:
    if rng.random() < 0.05:
        return ""
    sub = SUB_CATEGORY_SPECS[card.sub_category]
    category = CATEGORY_SPECS[sub.category]
    noun, gram = rng.choice(sub.nouns)
    gender_adj, gender_phrase = _audience_words(card.audience, rng)
    words = [
        gender_adj and decline(gender_adj, gram),
        decline(rng.choice(card.attributes), gram),
        noun,
        gender_phrase,
    ]
    noun_phrase = " ".join(w for w in words if w)
    brand = rng.choice((card.brand, card.brand, f"«{card.brand}»", f"&quot;{card.brand}&quot;"))
    praise = rng.choice(PRAISE)
    opener = rng.choice(DESCRIPTION_OPENERS).format(
        np=noun_phrase, Np=_capitalise(noun_phrase), brand=brand, praise=praise, Praise=_capitalise(praise)
    )
    body = [
        f"{sub.colour_label}: {card.colour}."
        if sub.colour_label
        else rng.choice(("Цвет: {}.", "Цвет — {}.", "Оттенок: {}.", "Цвет {}.")).format(card.colour),
        f"{category.material_label}: {card.material}.",
        *rng.sample(category.features, 2),
    ]
    if card.audience != "u":
        body.append(rng.choice(AUDIENCE_SENTENCES[card.audience]))
    if card.sizes:
        body.append(card.sizes)
    if category.sizing == "clothes" and rng.random() < 0.5:
        body.append(rng.choice(CLOTHES_CARE))
    rng.shuffle(body)
    sentences = [_capitalise(opener), *body]
    if rng.random() < 0.5:
        shout = rng.choice(SHOUTED_PHRASES)
        sentences.insert(rng.randint(0, len(sentences)), f"<b>{shout}</b>" if rng.random() < 0.4 else shout)
    if rng.random() < 0.5:
        emoji = "".join(rng.choices(category.emoji, k=rng.randint(1, 3)))
        i = rng.randrange(len(sentences))
        sentences[i] = f"{emoji} {sentences[i]}" if rng.random() < 0.5 else f"{sentences[i]} {emoji}"
    return _spell_yo_as_e(_noisy_join(sentences, rng), rng)


def _noisy_join(sentences: list[str], rng: random.Random) -> str:
    """Join with random separators (spaces, newlines, <br>), sometimes &nbsp; or doubled spaces, <p> or padding."""
    text = sentences[0]
    for sentence in sentences[1:]:
        text += rng.choice(SENTENCE_SEPARATORS) + sentence
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
