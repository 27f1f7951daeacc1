"""References that learn nothing: thumbnails from tensor stores, and their probes inside the folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_pipeline.evaluation import probes
from mm_pipeline.evaluation.neighbours import chance_precision, hit_shares
from mm_pipeline.evaluation.probes import (
    REFERENCE_FEATURES,
    REFERENCE_ROWS,
    RESULT_COLUMNS,
    prepare_labels,
    reference_probes,
    stratified_folds,
    tfidf_matrix,
)
from mm_pipeline.evaluation.references import pixel_features, pixel_features_of, pixel_vectors
from mm_pipeline.model.pairs import BatchFiles
from mm_pipeline_tests.evaluation.conftest import fitted_on_training_folds

COLOURS = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220]])
KEYWORDS = [["кроссовки", "кеды", "ботинки"], ["роман", "учебник", "сборник"], ["гантели", "мяч", "коврик"]]
THUMB = 8  # 8x8 thumbnails keep the in-fold PCA cheap here; the metric uses 24x24
FILLER = ["товар", "новинка", "качество", "доставка", "размер", "цвет", "подарок", "хит"]


def products(n: int, colour_coded: bool, keyword_coded: bool, seed: int = 0):
    """Three classes; photos carry the class colour (else random pixels), texts a class keyword (else only
    words shared by every class). Returns (texts, uint8 images [n, 30, 30, 3], labels)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(3, size=n)
    if colour_coded:
        images = COLOURS[codes][:, None, None, :] + rng.normal(0, 40, size=(n, 30, 30, 3))
    else:
        images = rng.integers(0, 256, size=(n, 30, 30, 3))
    texts = [
        " ".join([*rng.choice(FILLER, 3), *([rng.choice(KEYWORDS[c])] if keyword_coded else [])])
        for c in codes
    ]
    labels = np.array(["обувь", "книги", "спорт"])[codes]
    return texts, images.clip(0, 255).astype(np.uint8), labels


@pytest.mark.parametrize(
    ("colour_coded", "keyword_coded", "strong", "weak"),
    [
        (True, False, {"pixels", "tfidf+pixels"}, {"tfidf"}),
        (False, True, {"tfidf", "tfidf+pixels"}, {"pixels"}),
    ],
    ids=["colour-coded photos", "keyword-coded texts"],
)
def test_each_reference_separates_the_classes_its_modality_carries(colour_coded, keyword_coded, strong, weak):
    texts, images, labels = products(240, colour_coded, keyword_coded)
    run = reference_probes(texts, pixel_features(images, size=THUMB), labels, "multiclass")
    table = run.table()
    assert table.columns.tolist() == RESULT_COLUMNS
    assert list(zip(table["features"], table["probe"], strict=True)) == list(REFERENCE_ROWS)
    f1 = table.assign(model=table["features"].map({v: k for k, v in REFERENCE_FEATURES.items()}))
    for model in strong:
        assert (f1.loc[f1["model"] == model, "f1"] > 0.9).all(), model
    for model in weak:
        assert (f1.loc[f1["model"] == model, "f1"] < 0.6).all(), model  # three classes: chance ~0.33
    assert (table["f1_se"] >= 0).all() and (table["n"] == 240).all()
    # same rows, codes and folds as the embeddings' probes: predictions pair in a bootstrap
    embedded = probes.cross_validate(
        {"fused": pixel_features(images, size=THUMB)}, labels, "multiclass", pca_components=None
    )
    assert np.array_equal(run.prepared.codes, embedded.prepared.codes)


def test_pixel_pca_is_fitted_inside_training_folds_only(pca_fits):
    texts, images, labels = products(100, colour_coded=True, keyword_coded=False, seed=1)
    pixels = pixel_features(images, size=THUMB)
    fitted_on = pca_fits
    reference_probes(texts, pixels, labels, "multiclass")
    prepared = prepare_labels(labels, "multiclass", 5)
    folds = stratified_folds(prepared.codes, prepared.n_splits, seed=0)
    assert fitted_on_training_folds(fitted_on, pixels, folds)


def test_mismatched_inputs_are_refused():
    texts, images, labels = products(60, colour_coded=True, keyword_coded=True)
    with pytest.raises(ValueError, match="texts do not match"):
        reference_probes(texts[:50], pixel_features(images, size=THUMB), labels, "multiclass")
    with pytest.raises(ValueError, match="does not match"):
        reference_probes(texts, pixel_features(images[:50], size=THUMB), labels, "multiclass")


def test_thumbnails_average_areas_of_any_size_and_follow_the_requested_rows():
    images = np.zeros((3, 30, 30, 3), dtype=np.uint8)
    images[1, :, 15:] = 255  # right half white
    images[2] = 60
    thumbs = pixel_features(images, rows=np.array([2, 1]), size=2, chunk_rows=1)
    assert thumbs.shape == (2, 12) and thumbs.dtype == np.float32
    np.testing.assert_allclose(thumbs[0], 60 / 255, rtol=1e-6)
    np.testing.assert_allclose(thumbs[1].reshape(2, 2, 3)[:, :, 0], [[0, 1], [0, 1]])
    assert pixel_features(images, size=24).shape == (3, 24 * 24 * 3)  # 30 is not a multiple of 24


def test_thumbnails_of_products_are_read_across_batches_in_nm_order(tmp_path):
    batches = []
    for position, ids in enumerate(([5, 7, 9], [2, 4])):
        text, tensors = tmp_path / f"b{position}.parquet", tmp_path / f"b{position}.npy"
        pd.DataFrame({"nm": ids}).to_parquet(text)
        np.save(tensors, np.stack([np.full((8, 8, 3), nm, dtype=np.uint8) for nm in ids]))
        batches.append(BatchFiles(f"b{position}", text, tensors))
    thumbs = pixel_features_of(batches, np.array([4, 5, 9, 2]), size=4)
    assert thumbs.shape == (4, 48)
    np.testing.assert_allclose(thumbs[:, 0] * 255, [4, 5, 9, 2], rtol=1e-5)
    with pytest.raises(KeyError):
        pixel_features_of(batches, np.array([3]))


def test_neighbour_references_have_unit_rows_and_neighbours_of_the_same_class():
    texts, images, labels = products(90, colour_coded=True, keyword_coded=True, seed=2)
    tfidf = tfidf_matrix(texts)
    pixels = pixel_vectors(pixel_features(images, size=THUMB), n_components=16)
    assert tfidf.shape[0] == 90 and tfidf.dtype == np.float32 and pixels.shape == (90, 16)
    np.testing.assert_allclose(np.sqrt(tfidf.multiply(tfidf).sum(1)).A.ravel(), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pixels, axis=1), 1.0, atol=1e-5)
    for vectors in tfidf, pixels:  # keyword- and colour-coded: far above chance (1/3)
        assert (
            hit_shares([vectors], labels, np.arange(90), ks=(5,))[5].mean() > chance_precision(labels) + 0.4
        )
