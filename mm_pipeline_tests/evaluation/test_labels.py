import numpy as np
import pandas as pd
import pytest

from mm_pipeline.evaluation.labels import (
    TASKS,
    derive_labels,
    describe_price_bins,
    is_apparel,
    log_price,
    merge_rare_sub_categories,
    price_bin_edges,
    rare_sub_categories,
)


def products(rows: list[dict]) -> pd.DataFrame:
    defaults = {
        "description": "",
        "category": "Одежда",
        "sub_category": "Платья",
        "isadult": False,
        "brend": "Brand",
        "price": 1000.0,
    }
    frame = pd.DataFrame([{**defaults, **row} for row in rows])
    frame.insert(0, "nm", np.arange(len(frame)))
    return frame


def audience(rows: list[dict]) -> list[tuple]:
    labels = derive_labels(products(rows))
    return [
        (None if pd.isna(g) else g, None if pd.isna(a) else a)
        for g, a in zip(labels["gender"], labels["age_group"], strict=True)
    ]


def test_tasks_are_the_six_proxy_tasks():
    assert [t.name for t in TASKS] == [
        "category",
        "sub_category",
        "price_range",
        "gender",
        "age_group",
        "isadult",
    ]
    assert {t.name: t.kind for t in TASKS}["gender"] == "binary"
    assert derive_labels(products([{"title": "Платье"}])).columns.tolist() == [t.name for t in TASKS]


@pytest.mark.parametrize(
    ("title", "category", "sub_category", "expected"),
    [
        ("Платье женское летнее", "Одежда", "Платья", ("female", "adult")),
        ("Куртка для мальчика", "Одежда", "Куртки", ("male", "child")),
        ("Шапка унисекс", "Аксессуары", "Шапки", (None, None)),
        ("Кроссовки мужские", "Обувь", "Кроссовки", ("male", "adult")),
        ("Футболка для девочек", "Детям", "Футболки", ("female", "child")),
        ("Блузка женская", "Женщинам", "Блузки", ("female", "adult")),
        ("Рубашка мужская", "Мужчинам", "Рубашки", ("male", "adult")),
        ("Пижама женская для девочки", "Одежда", "Пижамы", ("female", "child")),  # child words win
        ("Костюм детский", "Одежда", "Костюмы", (None, "child")),
        ("Носки", "Одежда", "Носки", (None, None)),  # no audience words: unknown, never guessed
        ("Кеды женские и мужские", "Обувь", "Кеды", (None, "adult")),  # both genders: unknown gender
        ("Смартфон мужской", "Электроника", "Смартфоны", (None, None)),  # not clothes
        ("Men's Shirt", "Clothing", "Shirts", ("male", "adult")),
        ("Girls Frock", "Clothing", "Frocks", ("female", "child")),
        ("Kids Unisex Jacket", "Apparel", "Jackets", (None, "child")),
    ],
)
def test_gender_and_age_from_text(title, category, sub_category, expected):
    assert audience([{"title": title, "category": category, "sub_category": sub_category}]) == [expected]


def test_title_wins_over_description_and_description_is_the_fallback():
    rows = [
        {"title": "Платье женское", "description": "Подойдёт и мужчинам"},
        {"title": "Комбинезон", "description": "Тёплый комбинезон для малышей"},
        {"title": "Комбинезон", "text": "комбинезон brand для новорожденных девочек", "description": "x"},
    ]
    assert audience(rows) == [("female", "adult"), (None, "child"), ("female", "child")]


def test_lemmas_cover_inflected_forms():
    rows = [
        {"title": "Сапоги для девочек"},
        {"title": "Туфли женские"},
        {"title": "Кеды", "sub_category": "Кеды", "description": "Модель мужская, размер 42"},
        {"title": "Шорты для мальчиков"},
        {"title": "Купальник детям"},
    ]
    assert audience(rows) == [
        ("female", "child"),
        ("female", "adult"),
        ("male", "adult"),
        ("male", "child"),
        (None, "child"),
    ]


@pytest.mark.parametrize(
    ("ideal_for", "expected"),
    [
        ("Men", ("male", "adult")),
        ("Women's", ("female", "adult")),
        ("Baby Girl's", ("female", "child")),
        ("Baby Boys, Baby Girls", (None, "child")),
        ("Men, Women", (None, "adult")),
        ("Boys, Men", ("male", None)),  # listed for both ages
        ("Girls, Women", ("female", None)),
        ("Kids", (None, "child")),
        ("Unisex", (None, None)),
    ],
)
def test_flipkart_ideal_for(ideal_for, expected):
    row = {"title": "Solid Casual Shirt", "category": "Baby Care", "sub_category": "Infant Wear"}
    assert audience([{**row, "ideal_for": ideal_for}]) == [expected]


def test_explicit_gender_column_wins_and_unisex_stays_unknown():
    rows = [
        {"title": "Шапка Ferz", "description": "Пол: мужской", "category": "Шапки", "sub_category": "Шапки"},
        {"title": "Шапка Ferz", "description": "Пол: мужской", "category": "Шапки", "sub_category": "Шапки"},
        {"title": "Платье", "description": "для девочки"},
        {"title": "Платье", "description": ""},
    ]
    frame = products(rows).assign(
        gender=["men", "unisex", "жен", None], age_group=[None, None, "adult", "детский"]
    )
    labels = derive_labels(frame)
    assert labels["gender"].iloc[0] == "male" and labels["gender"].iloc[2] == "female"
    assert labels["gender"].iloc[1:4:2].isna().all()  # unisex column: not read from the description
    # unisex says nothing about age, so the description ("мужской") still makes it an adult item
    assert labels["age_group"].tolist() == ["adult", "adult", "adult", "child"]


def test_apparel_detection():
    assert (
        is_apparel("Одежда", "Платья") and is_apparel("Обувь", "") and is_apparel("Baby Care", "Infant Wear")
    )
    assert is_apparel("Clothing and Accessories", "Footwear") and is_apparel("Шапки", "Шапки")
    assert not is_apparel("Watches", "Wrist Watches") and not is_apparel("Дом", "Постельное бельё")
    assert not is_apparel("Kitchen & Dining", "Coffee Mugs") and not is_apparel("Электроника", "Смартфоны")


def test_sub_categories_under_eleven_products_merge_into_their_category():
    category = pd.Series(["Одежда"] * 14 + ["Обувь"] * 3)
    sub = pd.Series(["Платья"] * 11 + ["Юбки"] * 3 + ["Кеды"] * 3)
    merged = merge_rare_sub_categories(category, sub)
    assert merged.tolist() == ["Платья"] * 11 + ["Одежда"] * 3 + ["Обувь"] * 3
    assert merge_rare_sub_categories(category, sub, min_products=3).tolist() == sub.tolist()
    labels = derive_labels(
        products(
            [{"title": "x", "category": c, "sub_category": s} for c, s in zip(category, sub, strict=True)]
        )
    )
    assert labels["sub_category"].tolist() == merged.tolist()
    frame = products(
        [{"title": "x", "category": c, "sub_category": s} for c, s in zip(category, sub, strict=True)]
    )
    assert rare_sub_categories(frame) == (2, 6)  # Юбки and Кеды, 3 products each
    assert rare_sub_categories(frame, min_products=3) == (0, 0)


def test_price_quintiles_and_unknown_prices():
    prices = np.r_[np.arange(1, 101) * 10.0, [np.nan, 0.0, -5.0]]
    frame = products([{"title": "x", "price": p} for p in prices])
    edges = price_bin_edges(frame["price"])
    assert len(edges) == 4 and np.all(np.diff(edges) > 0)
    labels = derive_labels(frame)["price_range"]
    assert labels.iloc[:100].value_counts().to_dict() == {f"q{i}": 20 for i in range(1, 6)}
    assert labels.iloc[100:].isna().all()
    assert labels.iloc[0] == "q1" and labels.iloc[99] == "q5"
    # edges of another split (the 50 cheapest rows) label every row against that split's quintiles
    cheap_edges = price_bin_edges(frame["price"].iloc[:50])
    other_split = derive_labels(frame, price_bin_edges=cheap_edges)["price_range"]
    assert other_split.iloc[:50].value_counts().to_dict() == {f"q{i}": 10 for i in range(1, 6)}
    assert (other_split.iloc[50:100] == "q5").all() and other_split.iloc[100:].isna().all()
    np.testing.assert_allclose(log_price(frame["price"]).iloc[:3], np.log([10, 20, 30]))
    assert log_price(frame["price"]).iloc[100:].isna().all()
    assert list(describe_price_bins(edges)) == ["q1", "q2", "q3", "q4", "q5"]


def test_no_prices_at_all_gives_unknown_price_range():
    frame = products([{"title": "x", "price": np.nan}] * 3)
    assert derive_labels(frame)["price_range"].isna().all()
    with pytest.raises(ValueError):
        price_bin_edges(frame["price"])


def test_isadult_from_booleans_and_strings():
    frame = products(
        [{"title": "x", "isadult": v} for v in [True, False, "adult", "not_adult", "True", None]]
    )
    assert derive_labels(frame)["isadult"].tolist()[:5] == [
        "adult",
        "not_adult",
        "adult",
        "not_adult",
        "adult",
    ]
    assert pd.isna(derive_labels(frame)["isadult"].iloc[5])


def test_thirty_thousand_products_label_quickly():
    import time

    words = ["платье", "женское", "для", "девочки", "хлопок", "летнее", "мужская", "куртка", "тёплая", "size"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, 30)) + f" арт{i}" for i in range(30_000)]
    frame = products([{"title": t[:40], "description": t} for t in texts])
    started = time.perf_counter()
    labels = derive_labels(frame)
    assert time.perf_counter() - started < 15
    assert labels["gender"].notna().any() and labels["gender"].isna().any()
