from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mm_pipeline.sample import (
    ADULT_CATEGORIES,
    SUB_CATEGORIES,
    SampleSummary,
    generate_sample,
)

N, BATCHES = 600, 3
CLOTHING = ("Одежда", "Обувь")
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleSummary:
    return generate_sample(tmp_path_factory.mktemp("sample"), n=N, batches=BATCHES, seed=0)


@pytest.fixture(scope="module")
def catalog(sample: SampleSummary) -> pd.DataFrame:
    frames = [pd.read_parquet(path).assign(batch=i) for i, path in enumerate(sample.batch_files)]
    df = pd.concat(frames, ignore_index=True)
    df["has_image"] = [(sample.images_dir / f"{nm}.jpg").exists() for nm in df.nm]
    return df


def _images(images_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(images_dir.glob("*.jpg"))}


def _central_mean_rgb(path: Path) -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    h, w, _ = pixels.shape
    return pixels[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].reshape(-1, 3).mean(axis=0)


def test_layout_and_summary(sample: SampleSummary, catalog: pd.DataFrame) -> None:
    assert sample.batch_files == [
        sample.out_dir / "batches" / f"batch_{i:03d}.parquet" for i in range(BATCHES)
    ]
    assert sorted((sample.out_dir / "batches").iterdir()) == sample.batch_files
    assert sample.images_dir == sample.out_dir / "images"
    assert sample.n_products == len(catalog) == N
    assert catalog.groupby("batch").size().tolist() == [N // BATCHES] * BATCHES
    assert sample.n_dup_groups == catalog.loc[catalog.dup_group >= 0, "dup_group"].nunique()
    assert len(list(sample.images_dir.iterdir())) == catalog.drop_duplicates("nm").has_image.sum()


def test_schema(sample: SampleSummary) -> None:
    df = pd.read_parquet(sample.batch_files[0])
    assert df.nm.dtype == np.int64 and df.dup_group.dtype == np.int64
    assert df.price.dtype == np.float64 and df.isadult.dtype == bool
    for column in ("title", "description", "category", "sub_category", "brend", "color"):
        assert pd.api.types.is_string_dtype(df[column]), column
    assert "gender" not in df.columns
    assert not df.isna().any().any()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    first = generate_sample(
        tmp_path / "a", n=150, seed=7, progress=lambda done, total: calls.append((done, total))
    )
    second = generate_sample(tmp_path / "b", n=150, seed=7)
    other = generate_sample(tmp_path / "c", n=150, seed=8)

    for a, b in zip(first.batch_files, second.batch_files, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert _images(first.images_dir) == _images(second.images_dir)
    assert first.batch_files[0].read_bytes() != other.batch_files[0].read_bytes()
    titles = set(pd.read_parquet(first.batch_files[0]).title)
    assert len(titles & set(pd.read_parquet(other.batch_files[0]).title)) < len(titles) / 2

    total = calls[-1][1]
    assert calls[-1] == (total, total) and total == len(list(first.images_dir.iterdir()))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_rerun_replaces_previous_output(tmp_path: Path) -> None:
    generate_sample(tmp_path, n=90, batches=3, seed=1, image_size=64)
    summary = generate_sample(tmp_path, n=60, batches=2, seed=2, image_size=64)
    assert sorted((tmp_path / "batches").iterdir()) == summary.batch_files
    nms = set(pd.concat(pd.read_parquet(p) for p in summary.batch_files).nm)
    assert {int(p.stem) for p in summary.images_dir.iterdir()} <= nms


@pytest.mark.parametrize(("n", "batches", "seed"), [(30, 3, 0), (100, 0, 0), (100, 1, -1)])
def test_rejects_invalid_arguments(tmp_path: Path, n: int, batches: int, seed: int) -> None:
    with pytest.raises(ValueError):
        generate_sample(tmp_path, n=n, batches=batches, seed=seed)


def test_taxonomy_and_coverage(catalog: pd.DataFrame) -> None:
    categories = set(SUB_CATEGORIES.values())
    assert len(categories) >= 10 and len(SUB_CATEGORIES) >= 40
    assert {
        "Одежда",
        "Обувь",
        "Детские товары",
        "Электроника",
        "Дом и кухня",
        "Красота",
        "Книги",
        "Спорт",
    } <= categories
    assert {"Аксессуары", "Товары для курения"} <= categories and categories > ADULT_CATEGORIES
    assert catalog.sub_category.nunique() >= 40 and set(catalog.category) == categories
    assert (catalog.sub_category.map(SUB_CATEGORIES) == catalog.category).all()


def test_isadult_marks_exactly_the_adult_categories(catalog: pd.DataFrame) -> None:
    assert catalog.isadult.sum() > 0
    assert (catalog.isadult == catalog.category.isin(ADULT_CATEGORIES)).all()
    assert {"Кальяны", "Электронные сигареты"} <= set(catalog.loc[catalog.isadult, "sub_category"])


def test_prices_depend_on_sub_category(catalog: pd.DataFrame) -> None:
    assert (catalog.price > 0).all() and (catalog.price == catalog.price.round()).all()
    assert (catalog.price % 10 == 9).mean() > 0.3
    medians = catalog.groupby("sub_category").price.median()
    assert medians["Смартфоны"] > 20 * medians["Носки"]


def test_clothing_text_states_gender_and_age(catalog: pd.DataFrame) -> None:
    clothing = catalog[catalog.category.isin(CLOTHING)]
    text = (clothing.title + " " + clothing.description).str.lower()
    female, male = text.str.contains("женск"), text.str.contains("мужск")
    child = text.str.contains("для девоч|для мальч|детск|для детей|для малыш")
    unstated = ~(female | male | child)
    for share in (female.mean(), male.mean(), child.mean()):
        assert share > 0.05
    assert 0.03 < unstated.mean() < 0.25
    assert text.str.contains("для девочки").any() and text.str.contains("для мальчика").any()


def test_colour_named_in_text(catalog: pd.DataFrame) -> None:
    described = catalog[catalog.description != ""]
    text = (described.title + " " + described.description).str.lower().str.replace("ё", "е")
    stems = described.color.str.replace("ё", "е").str[:-2]  # "красн", "син", "голуб"
    forms = [re.compile(rf"\b{stem}(ый|ий|ой|ая|яя|ое|ее|ые|ие)\b") for stem in stems]
    assert all(form.search(t) for form, t in zip(forms, text, strict=True))


def test_relisting_groups(sample: SampleSummary, catalog: pd.DataFrame) -> None:
    grouped = catalog[catalog.dup_group >= 0]
    assert 0.07 < len(grouped) / len(catalog) < 0.16
    spans_batches = 0
    for _, group in grouped.groupby("dup_group"):
        assert len(group) >= 2 and group.nm.is_unique and group.has_image.all()
        for column in ("sub_category", "brend", "color", "category"):
            assert group[column].nunique() == 1, column
        assert group.title.is_unique or group.description.is_unique
        assert group.price.max() <= 1.1 * group.price.min()
        photos = [(sample.images_dir / f"{nm}.jpg").read_bytes() for nm in group.nm]
        assert len(set(photos)) == len(photos)
        spans_batches += group.batch.nunique() > 1
    assert spans_batches >= 2


def test_bad_rows_in_every_batch(sample: SampleSummary, catalog: pd.DataFrame) -> None:
    n_bad = 0
    for _, batch in catalog.groupby("batch"):
        missing = ~batch.has_image
        blank = batch.title.str.strip() == ""
        repeated = batch.nm.duplicated(keep="first")
        assert missing.sum() >= 1 and blank.sum() >= 1 and repeated.sum() >= 1
        assert not (missing & blank).any() and not (repeated & (missing | blank)).any()
        for nm in batch.nm[repeated]:
            assert batch.title[batch.nm == nm].nunique() == 2
        assert (batch[missing | blank | repeated].dup_group == -1).all()
        n_bad += int((missing | blank | repeated).sum())
    assert n_bad == sample.n_bad_rows and 3 * BATCHES <= n_bad <= 6 * BATCHES
    assert (
        catalog.nm.duplicated().sum()
        == catalog.groupby("batch").nm.apply(lambda s: s.duplicated().sum()).sum()
    )


def test_images_are_jpegs_coloured_like_the_text(sample: SampleSummary, catalog: pd.DataFrame) -> None:
    photographed = catalog[catalog.has_image].drop_duplicates("nm")
    with Image.open(sample.images_dir / f"{photographed.nm.iloc[0]}.jpg") as image:
        assert image.format == "JPEG" and image.size == (160, 160) and image.mode == "RGB"
    means = np.stack([_central_mean_rgb(sample.images_dir / f"{nm}.jpg") for nm in photographed.nm])
    by_colour = pd.DataFrame(means, columns=["r", "g", "b"]).groupby(photographed.color.to_numpy()).mean()
    assert by_colour.loc["красный", "r"] > by_colour.loc["красный", "b"] + 30
    assert by_colour.loc["синий", "b"] > by_colour.loc["синий", "r"] + 30
    assert by_colour.loc["зелёный", "g"] > by_colour.loc["зелёный", ["r", "b"]].max() + 15
    assert by_colour.loc["белый"].mean() > by_colour.loc["чёрный"].mean() + 30


def test_descriptions_carry_marketplace_noise(catalog: pd.DataFrame) -> None:
    descriptions = catalog.description
    assert 0.02 < (descriptions == "").mean() < 0.1
    assert descriptions.str.contains(r"<br/?>|<p>|<b>").mean() > 0.2
    assert descriptions.str.contains("&nbsp;").any() and descriptions.str.contains("&quot;").any()
    assert descriptions.str.contains(EMOJI).mean() > 0.2
    assert descriptions.str.contains("  ").any() and descriptions.str.contains("\n").any()
    assert descriptions.str.contains(r"\b[А-ЯЁ]{4,}\b").any()


def test_sample_command_says_what_it_wrote_and_what_it_replaced(tmp_path, capsys):
    from mm_pipeline.cli import main

    out = tmp_path / "s"
    assert main(["sample", "--out", str(out), "--n", "40", "--batches", "1"]) == 0
    first = capsys.readouterr().out
    assert first.startswith(f"40 products in 1 batch under {out} (") and "replacing" not in first
    assert main(["sample", "--out", str(out), "--n", "40", "--batches", "2"]) == 0
    assert capsys.readouterr().out.startswith(
        f"40 products in 2 batches under {out} (replacing the sample that was there) ("
    )
