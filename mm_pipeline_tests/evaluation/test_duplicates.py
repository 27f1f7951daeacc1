import math

import numpy as np
import pandas as pd
import pytest

from mm_pipeline.evaluation.duplicates import (
    candidate_pairs,
    chance_recall_at_k,
    choose_threshold,
    evaluate_duplicates,
    headline,
    pair_metrics,
    retrieval_recall,
    split_groups,
)
from mm_pipeline.evaluation.references import REFERENCE_KINDS, reference_vectors


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def planted_groups(n_groups=300, n_distractors=2_000, dim=64, noise=0.5, seed=0):
    """Groups of 2-4 rows (centre + small noise) among random distractor rows; group -1 for distractors."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 5, size=n_groups)
    groups = np.concatenate([np.repeat(np.arange(n_groups), sizes), np.full(n_distractors, -1)])
    centres = rng.standard_normal((n_groups, dim))
    grouped = centres[groups[groups >= 0]] + noise * rng.standard_normal((sizes.sum(), dim))
    vectors = np.concatenate([grouped, rng.standard_normal((n_distractors, dim))])
    order = rng.permutation(len(groups))
    nm = 10**8 - 3 * np.arange(len(groups), dtype=np.int64)  # nm order opposite to row order
    return unit_rows(vectors[order]), nm, groups[order]


@pytest.fixture(scope="module")
def planted():
    return planted_groups()


def test_planted_groups_are_found(planted):
    vectors, nm, groups = planted
    report = evaluate_duplicates({"image": vectors}, nm, groups)
    metrics = report.metrics["image"]
    assert metrics.recall_at_k[5] > 0.99
    assert metrics.chance_at_k[5] < 0.01
    assert metrics.pair_f1 > 0.95
    assert report.pairs["same_group"].mean() > 0.95
    summary = report.summary()
    assert summary.loc[0, "recall@1"] == metrics.recall_at_k[1]


def test_random_vectors_score_near_chance():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(100), 3)
    vectors = unit_rows(rng.standard_normal((len(groups), 32)))
    result = retrieval_recall(vectors, groups, ks=(10,))
    assert result["n_queries"] == 300
    assert result["chance@10"] == pytest.approx(1 - (289 * 288) / (299 * 298))  # 1 - C(297,10)/C(299,10)
    assert abs(result["recall@10"] - result["chance@10"]) < 0.05


def test_chance_level_matches_simulation():
    groups = np.concatenate([np.repeat(np.arange(20), 4), np.full(120, -1)])
    rng = np.random.default_rng(0)
    queries = np.flatnonzero(groups >= 0)
    hits = [
        (groups[rng.choice(np.delete(np.arange(len(groups)), q), size=5, replace=False)] == groups[q]).any()
        for q in np.tile(queries, 100)
    ]
    assert chance_recall_at_k(groups, ks=(5,))[5] == pytest.approx(np.mean(hits), abs=0.02)


def test_split_keeps_groups_whole_and_covers_all_rows(planted):
    _, _, groups = planted
    tune, score = split_groups(groups, seed=4)
    assert np.array_equal(tune, ~score)
    assert not set(groups[tune & (groups >= 0)]) & set(groups[score & (groups >= 0)])
    distractors = groups < 0
    assert abs(tune[distractors].mean() - 0.5) < 0.01
    np.testing.assert_array_equal(split_groups(groups, seed=4)[0], tune)


def test_threshold_ignores_score_half_data(planted):
    """Planted leak: shift every score-half row towards a common direction so its similarities jump up.

    Score-half metrics must change while the threshold (fitted on the tune half) stays bit-identical;
    the same shift applied to the tune half does move it.
    """
    vectors, nm, groups = planted
    tune_mask, score_mask = split_groups(groups, seed=0)
    common = unit_rows(np.random.default_rng(9).standard_normal((1, vectors.shape[1])))

    def shift(mask: np.ndarray) -> np.ndarray:
        shifted = vectors.copy()
        shifted[mask] = unit_rows(shifted[mask] + 3.0 * common)
        return shifted

    original, score_shifted, tune_shifted = (
        evaluate_duplicates({"fused": kind_vectors}, nm, groups, seed=0).metrics["fused"]
        for kind_vectors in (vectors, shift(score_mask), shift(tune_mask))
    )
    assert score_shifted.threshold == original.threshold
    assert score_shifted.pair_precision < original.pair_precision - 0.5
    assert tune_shifted.threshold != original.threshold  # the check can see a threshold move


def test_choose_threshold_maximises_f1_and_respects_ties():
    assert choose_threshold(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 1, 0, 0])) == 0.8
    # Cutting between the tied 0.8 scores is impossible: 0.8 admits both (F1 0.8 beats 0.67 at 0.9).
    assert choose_threshold(np.array([0.9, 0.8, 0.8]), np.array([1, 1, 0])) == 0.8
    assert choose_threshold(np.array([0.9, 0.5]), np.array([0, 0])) == math.inf


def test_pair_metrics_counts_missed_pairs_in_recall():
    metrics = pair_metrics(np.array([0.9, 0.8, 0.3]), np.array([1, 0, 1]), threshold=0.5, n_positive=4)
    assert metrics == {
        "precision": 0.5,
        "recall": 0.25,
        "f1": pytest.approx(2 / 6),
        "n_pairs": 3,
        "n_positive": 4,
    }


def test_listings_that_differ_by_float_rounding_are_one_tie():
    """Listings with one text score a cosine of 1 give or take float32 rounding. The tune half's twins are
    exact copies, the score half's differ by a relative 1e-3 (cosine 1 - 5e-7): unrounded, the threshold
    fitted on the copies would pass none of them."""
    rng = np.random.default_rng(7)
    products = unit_rows(rng.standard_normal((80, 64)))
    groups = np.repeat(np.arange(80), 2)
    tune, _ = split_groups(groups, seed=0)
    twins = products[groups].astype(np.float64)
    nudged = np.arange(len(groups)) % 2 == 1
    noise = rng.standard_normal(twins.shape)
    twins[nudged & ~tune] += (
        1e-3 * noise[nudged & ~tune] / np.linalg.norm(noise[nudged & ~tune], axis=1)[:, None]
    )
    report = evaluate_duplicates({"fused": unit_rows(twins)}, np.arange(len(groups)), groups)
    assert report.metrics["fused"].pair_f1 == 1.0


def test_symmetric_pairs_are_deduplicated(planted):
    vectors, nm, groups = planted
    pairs = candidate_pairs(vectors, groups, k=10)
    assert (pairs.row_a < pairs.row_b).all()
    keys = set(zip(pairs.row_a.tolist(), pairs.row_b.tolist(), strict=True))
    assert len(keys) == len(pairs.row_a)

    review = evaluate_duplicates({"text": vectors}, nm, groups).pairs
    assert (review["nm_a"] < review["nm_b"]).all()
    assert not review.duplicated(["kind", "nm_a", "nm_b"]).any()
    assert list(review.columns) == ["kind", "nm_a", "nm_b", "score", "same_group"]


def photo_groups(n_groups=40, size=48, seed=0):
    """Two shots per product: a random blocky photo, and the same photo slightly brighter, noisy and shifted
    by a pixel. Texts share nothing within a group, so only the pixels can pair them."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(n_groups, 6, 6, 3))
    photos = np.repeat(np.repeat(blocks, size // 6, axis=1), size // 6, axis=2).astype(np.float32)
    second = np.roll(photos, 1, axis=2) * 1.05 + rng.normal(0, 8, photos.shape)
    images = np.concatenate([photos, second]).clip(0, 255).astype(np.uint8)
    groups = np.concatenate([np.arange(n_groups), np.arange(n_groups)])
    words = [f"word{i}" for i in range(4 * n_groups)]
    texts = [f"{words[2 * i]} {words[2 * i + 1]}" for i in range(2 * n_groups)]
    return texts, images, groups


def test_pixel_reference_finds_near_identical_photos():
    texts, images, groups = photo_groups()
    references = reference_vectors(texts, images)
    assert set(references) == set(REFERENCE_KINDS)
    for vectors in references.values():
        assert vectors.dtype == np.float32 and len(vectors) == len(groups)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    report = evaluate_duplicates(references, np.arange(len(groups)), groups)
    assert report.metrics["pixels"].recall_at_k[1] == 1.0
    assert report.metrics["pixels"].pair_f1 > 0.9
    assert report.metrics["tfidf"].recall_at_k[5] < 0.3  # the texts carry nothing here
    assert report.metrics["tfidf+pixels"].recall_at_k[5] > 0.9


def test_headline_reads_fused_against_the_best_reference():
    table = pd.DataFrame(
        {
            "kind": ["fused", "base_fused", "tfidf", "pixels", "tfidf+pixels"],
            "pair_f1": [0.7, 0.6, 0.9, 0.4, 0.8],
            "recall@5": [0.8, 0.7, 0.95, 0.5, 0.9],
            "chance@5": [0.01] * 5,
            "threshold": [0.5] * 5,
        }
    )
    summary = headline(table)
    assert summary["best_reference"] == "tfidf"
    assert summary["reference_pair_f1"] == 0.9 and summary["reference_recall_at_5"] == 0.95
    assert summary["fused_minus_best_reference"] == pytest.approx(-0.2)
    assert summary["fused_f1_minus_base"] == pytest.approx(0.1)
    with pytest.raises(KeyError, match="reference"):
        headline(table[~table["kind"].isin(REFERENCE_KINDS)])


def test_pair_f1_standard_error_matches_the_spread_over_fresh_catalogues():
    """The cluster bootstrap of one catalogue predicts how much pair F1 moves between catalogues drawn alike."""
    f1, se = [], []
    for seed in range(30):
        vectors, nm, groups = planted_groups(n_groups=60, n_distractors=200, dim=16, noise=0.9, seed=seed)
        metrics = evaluate_duplicates({"image": vectors}, nm, groups).metrics["image"]
        f1.append(metrics.pair_f1)
        se.append(metrics.pair_f1_se)
    assert 0.3 < np.mean(f1) < 0.9  # neither trivial nor hopeless, so the spread is real
    # measured 1.02; resampling rows instead of whole groups gives 1.9, leaving the positives fixed 1.3
    assert 0.75 < np.mean(se) / np.std(f1) < 1.25


def test_headline_standard_errors_are_of_paired_differences():
    vectors, nm, groups = planted_groups(n_groups=150, n_distractors=500, dim=16, noise=0.8, seed=5)
    noisy = unit_rows(vectors + 0.1 * np.random.default_rng(1).standard_normal(vectors.shape))
    kinds = {"fused": vectors, "base_fused": vectors, "tfidf": noisy, "pixels": noisy[::-1]}
    report = evaluate_duplicates(kinds, nm, groups)
    assert set(report.pair_f1_resamples) == set(kinds)
    assert all(len(f1) == 200 for f1 in report.pair_f1_resamples.values())
    summary = headline(report.summary(), report.pair_f1_resamples)
    assert summary["best_reference"] == "tfidf"
    assert summary["fused_f1_se"] == pytest.approx(report.metrics["fused"].pair_f1_se)
    assert summary["fused_f1_se"] > 0
    assert summary["fused_f1_minus_base_se"] == 0.0  # the same vectors: every resample agrees
    assert 0 < summary["fused_minus_best_reference_se"] < summary["fused_f1_se"]  # shared rows cancel
    assert "fused_f1_se" not in headline(report.summary())
