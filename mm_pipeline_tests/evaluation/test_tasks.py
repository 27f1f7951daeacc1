"""A task's tables against its references, and the gate verdicts read from it."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from mm_pipeline.evaluation.probes import RESULT_COLUMNS
from mm_pipeline.evaluation.references import pixel_features
from mm_pipeline.evaluation.tasks import (
    INSUFFICIENT,
    NEIGHBOUR_COLUMNS,
    EvalSet,
    evaluate_task,
    judge,
    save_metric,
)
from mm_pipeline.inference.encoders import BASE_FUSION_WEIGHTS, fuse, l2_normalize
from mm_pipeline.layout import Layout

MODELS = {"fine_tuned", "base", "tfidf", "pixels", "tfidf+pixels"}


def eval_set(n: int = 300, seed: int = 0, colour_coded: bool = False) -> EvalSet:
    """Three categories; fine-tuned image and lexical vectors carry the category, base vectors and texts are
    noise; photos are random pixels, or a category colour when ``colour_coded``."""
    rng = np.random.default_rng(seed)
    names = np.array(["Обувь", "Книги", "Спорт"])
    codes = rng.integers(3, size=n)
    products = pd.DataFrame(
        {
            "nm": np.arange(n),
            "category": names[codes],
            "sub_category": names[codes],
            "title": [f"товар {i}" for i in range(n)],
            "description": "",
            "text": [f"товар {i}" for i in range(n)],
            "isadult": False,
            "price": rng.uniform(100, 5000, n),
        }
    )
    centres = rng.normal(size=(3, 16)) * 0.6
    tuned = {
        "image": l2_normalize(centres[codes] + rng.normal(size=(n, 16))),
        "text": l2_normalize(rng.normal(size=(n, 16))),
        "lexical": l2_normalize(centres[codes] + rng.normal(size=(n, 16))),
    }
    tuned["fused"] = fuse(tuned, {"image": 0.4, "text": 0.2, "lexical": 0.4})
    base = {"image": rng.normal(size=(n, 16)), "text": rng.normal(size=(n, 16))}
    if colour_coded:
        colours = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220]])
        images = colours[codes][:, None, None, :] + rng.normal(0, 40, size=(n, 24, 24, 3))
    else:
        images = rng.integers(0, 256, size=(n, 24, 24, 3))
    thumbnails = pixel_features(images.clip(0, 255).astype(np.uint8), size=8)  # 8x8: a cheap PCA
    return EvalSet.build(products, tuned, base, thumbnails)


@pytest.fixture(scope="module")
def category() -> tuple[EvalSet, object]:
    data = eval_set()
    return data, evaluate_task("category", data)


def test_task_table_has_every_reference_and_a_paired_noise_estimate(category):
    _, result = category
    assert result.status == "ok"
    table = result.table
    assert table.columns.tolist() == ["model", *RESULT_COLUMNS]
    assert set(table["model"]) == MODELS
    assert {"text", "image", "lexical", "fused", "pca_fused"} <= set(
        table.loc[table["model"] == "fine_tuned", "features"]
    )
    assert set(table.loc[table["model"] == "base", "features"]) == {"fused"}
    assert (table["f1_se"] > 0).all() and (table["f1_se"] < 0.1).all()
    headline = result.headline
    assert headline["fused_f1"] > 0.8 and headline["base_fused_f1"] < 0.5
    assert headline["fused_f1_minus_base"] == pytest.approx(headline["fused_f1"] - headline["base_fused_f1"])
    assert 0.005 < headline["fused_f1_minus_base_se"] < 0.1 and 0 < headline["fused_f1_se"] < 0.1
    references = table[table["model"].isin(["tfidf", "pixels", "tfidf+pixels"])]
    assert headline["best_reference_f1"] == references["f1"].max() < 0.6  # texts and photos carry nothing
    assert headline["fused_minus_best_reference"] == pytest.approx(
        headline["fused_f1"] - references["f1"].max()
    )
    assert 0.005 < headline["fused_minus_best_reference_se"] < 0.1
    for model, key in (
        ("tfidf", "tfidf_f1"),
        ("pixels", "pixels_f1"),
        ("tfidf+pixels", "tfidf_plus_pixels_f1"),
    ):
        assert headline[key] == table.loc[table["model"] == model, "f1"].max()


def test_neighbour_table_covers_every_vector_set_with_errors(category):
    data, result = category
    neighbours = result.neighbours
    assert neighbours.columns.tolist() == NEIGHBOUR_COLUMNS
    pairs = set(zip(neighbours["model"], neighbours["features"], strict=True))
    assert {("fine_tuned", kind) for kind in ("text", "image", "lexical", "fused")} | {
        ("base", "fused")
    } <= pairs
    assert {model for model, _ in pairs} == MODELS
    assert set(neighbours["k"]) == {5, 10} and len(neighbours) == 2 * len(pairs)
    assert (neighbours["n"] == len(data.products)).all() and (neighbours["se"] > 0).all()
    at5 = neighbours[neighbours["k"] == 5].set_index(["model", "features"])
    chance = result.extras["neighbour_precision_chance"]
    headline = result.headline
    assert (
        headline["fused_neighbour_precision_at_5"]
        == at5.loc[("fine_tuned", "fused"), "precision"]
        > chance + 0.2
    )
    assert headline["fused_neighbour_precision_at_5_se"] == at5.loc[("fine_tuned", "fused"), "se"]
    tfidf = at5.loc[at5.index.get_level_values("model") == "tfidf"].iloc[0]
    assert headline["tfidf_neighbour_precision_at_5"] == tfidf["precision"]
    assert abs(tfidf["precision"] - chance) < 4 * tfidf["se"]  # texts carry nothing: chance
    difference = headline["fused_minus_tfidf_neighbour_precision_at_5"]
    assert difference == pytest.approx(headline["fused_neighbour_precision_at_5"] - tfidf["precision"])
    assert 0 < headline["fused_minus_tfidf_neighbour_precision_at_5_se"] < 0.05


def test_fine_tuned_vectors_are_taken_as_stored_and_base_fused_is_unit_length():
    data = eval_set(60)
    rng = np.random.default_rng(0)
    stored = {
        "image": rng.normal(size=(60, 4)),
        "text": rng.normal(size=(60, 4)),
        "fused": rng.normal(size=(60, 8)),
    }
    rebuilt = EvalSet.build(data.products, stored, stored, data.pixels)
    np.testing.assert_array_equal(rebuilt.tuned["fused"], stored["fused"].astype(np.float32))
    expected = fuse({k: stored[k] for k in ("image", "text")}, BASE_FUSION_WEIGHTS)
    np.testing.assert_allclose(rebuilt.base["fused"], expected, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(rebuilt.base["fused"], axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="need 'fused'"):
        EvalSet.build(data.products, {"image": stored["image"]}, stored, data.pixels)
    with pytest.raises(ValueError, match="pixels has 50 rows"):
        EvalSet.build(data.products, stored, stored, data.pixels[:50])


def test_a_colour_coded_catalogue_shows_the_pixel_reference_ahead():
    result = evaluate_task("category", eval_set(colour_coded=True))
    headline = result.headline
    assert headline["pixels_f1"] > 0.95 and headline["tfidf_f1"] < 0.6
    assert headline["fused_minus_best_reference"] < 0 and result.extras["best_reference"].startswith(
        ("pixels", "tfidf+pixels")
    )
    at5 = result.neighbours[result.neighbours["k"] == 5].set_index("model")
    assert at5.loc["pixels", "precision"] > 0.9 and at5.loc["tfidf+pixels", "precision"] > 0.9


def test_metric_folder_holds_summary_table_and_neighbours(tmp_path, category):
    _, result = category
    layout = Layout(tmp_path)
    save_metric(layout, "category", result.summary(), result.table, result.neighbours)
    assert json.loads(layout.metric_summary("category").read_text())[
        "fused_minus_best_reference"
    ] == pytest.approx(result.headline["fused_minus_best_reference"])
    pd.testing.assert_frame_equal(pd.read_parquet(layout.metric_neighbours("category")), result.neighbours)
    pd.testing.assert_frame_equal(pd.read_parquet(layout.metric_table("category")), result.table)


def test_every_probe_of_a_task_keeps_a_products_listings_in_one_fold(monkeypatch):
    """The embeddings', the base model's and the references' folds all come from the dup groups."""
    from mm_pipeline.evaluation.probes import baselines, cross_validation, protocol

    data = eval_set(120)
    data.products["dup_group"] = np.repeat(np.arange(60), 2)  # every product listed twice
    folds_of = []

    def recording(codes, n_splits, seed, groups=None):
        folds = protocol.stratified_folds(codes, n_splits, seed, groups)
        folds_of.append((groups, folds))
        return folds

    monkeypatch.setattr(cross_validation, "stratified_folds", recording)
    monkeypatch.setattr(baselines, "stratified_folds", recording)
    evaluate_task("category", data)
    assert len(folds_of) == 3  # fine-tuned, base, references
    for groups, folds in folds_of:
        assert groups is not None
        for train_rows, test_rows in folds:
            assert not set(groups[train_rows]) & set(groups[test_rows])


def test_sub_category_says_how_many_rare_ones_it_scored_as_their_category():
    data = eval_set()
    sub_category = data.products["sub_category"].copy()
    sub_category.iloc[:4] = "Кеды"  # 4 products: under MIN_SUB_CATEGORY_PRODUCTS, read as their category
    data = dataclasses.replace(data, products=data.products.assign(sub_category=sub_category))
    extras = evaluate_task("sub_category", data).extras
    assert extras["min_sub_category_products"] == 11
    categories_of_rare = data.products["category"].iloc[:4].nunique()  # one rare group per category
    assert extras["sub_categories_read_as_category"] == categories_of_rare
    assert extras["products_in_them"] == 4 and extras["classes"] == 3


def test_a_task_without_labels_reports_insufficient_data():
    result = evaluate_task("isadult", eval_set())  # every product is "not adult": one class
    assert result.status == INSUFFICIENT and "one class" in result.reason
    assert judge(result.summary(), 0.9, 0.0).passed


def summary(fused: float, base: float, se: float = 0.0) -> dict:
    """A task summary whose F1 and F1 difference both have standard error ``se``."""
    return {
        "status": "ok",
        "fused_f1": fused,
        "fused_f1_se": se,
        "fused_f1_minus_base": fused - base,
        "fused_f1_minus_base_se": se,
    }


@pytest.mark.parametrize(
    ("fused", "base", "se", "passed", "reason"),
    [
        (0.80, 0.70, 0.02, True, ""),
        (0.40, 0.30, 0.02, False, "below the floor 0.500 (noise 0.033)"),
        (0.48, 0.40, 0.02, True, ""),  # 0.02 under the floor is inside 1.645 x 0.02
        (0.48, 0.40, 0.00, False, "below the floor 0.500 (noise 0.000)"),
        (0.60, 0.70, 0.00, False, "trails the base model by 0.100"),
        (0.60, 0.70, 0.02, False, "trails the base model by 0.100 (allowed 0.050 + noise 0.033)"),
        (0.60, 0.67, 0.02, True, ""),  # 0.07 drop is inside 0.05 + 1.645 x 0.02
        (0.48, 0.40, math.nan, False, "below the floor 0.500 (noise 0.000)"),  # an unknown error grants none
        (math.nan, 0.40, 0.02, False, "fused_f1, fused_f1_minus_base not a finite number"),
        (0.80, math.nan, 0.02, False, "fused_f1_minus_base not a finite number"),
    ],
)
def test_gate_verdicts(fused, base, se, passed, reason):
    verdict = judge(summary(fused, base, se), min_f1=0.5, max_drop_vs_base=0.05)
    assert verdict.passed is passed
    assert reason in "; ".join(verdict.reasons)


def test_noise_z_zero_makes_thresholds_exact():
    assert not judge(summary(0.60, 0.67, 0.02), 0.5, 0.05, noise_z=0.0).passed
    assert not judge(summary(0.49, 0.40, 0.05), 0.5, 0.05, noise_z=0.0).passed
