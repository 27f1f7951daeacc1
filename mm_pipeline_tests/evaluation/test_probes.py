import threading
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mm_pipeline.evaluation import probes
from mm_pipeline.evaluation.probes import (
    RESULT_COLUMNS,
    InsufficientData,
    cross_validate,
    prepare_labels,
    regress_log_price,
    score_predictions,
    stratified_folds,
)
from mm_pipeline_tests.evaluation.conftest import fitted_on_training_folds


def evaluate_probes(*args, **kwargs) -> pd.DataFrame:
    """The score table of :func:`cross_validate` for the same arguments."""
    return cross_validate(*args, **kwargs).table()


def clusters(n: int, dim: int, n_classes: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * spread
    codes = rng.integers(n_classes, size=n)
    x = centres[codes] + rng.normal(size=(n, dim))
    return x.astype(np.float32), np.array([f"class_{c}" for c in codes])


def test_separable_clusters_score_near_one():
    x, y = clusters(600, 32, 4, spread=3.0)
    table = evaluate_probes({"text": x[:, :16], "image": x[:, 16:], "fused": x}, y, "multiclass")
    assert table.columns.tolist() == RESULT_COLUMNS
    assert table[["features", "probe"]].apply(tuple, axis=1).tolist() == [
        (f, p) for f in ("text", "image", "fused", "pca_fused") for p in ("logreg", "mlp")
    ]
    assert (table["f1"] > 0.95).all()
    assert (table["n"] == 600).all() and (table["n_classes"] == 4).all() and (table["n_splits"] == 5).all()

    xb, yb = clusters(400, 16, 2, spread=3.0, seed=1)
    binary = evaluate_probes({"fused": xb}, yb, "binary", pca_components=None)
    assert binary["features"].tolist() == ["fused", "fused"] and (binary["f1"] > 0.95).all()


def test_random_features_score_near_chance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 32)).astype(np.float32)
    binary = evaluate_probes({"fused": x}, rng.choice(["a", "b"], 1000), "binary", pca_components=None)
    assert (binary["f1"] < 0.6).all()
    multiclass = evaluate_probes(
        {"fused": x}, rng.choice(list("abcde"), 1000), "multiclass", pca_components=None
    )
    assert (multiclass["f1"] < 0.35).all() and (multiclass["macro_f1"] < 0.35).all()


def sklearn_oof_f1(x: np.ndarray, labels: np.ndarray, kind: str, model) -> float:
    prepared = prepare_labels(labels, kind, 5)
    predicted = np.empty(len(prepared.codes), np.int64)
    for train_rows, test_rows in stratified_folds(prepared.codes, prepared.n_splits, seed=0):
        # centred, then one scale for every dimension: the mean per-dimension variance becomes 1
        centre = StandardScaler(with_std=False).fit(x[train_rows])
        scale = np.sqrt(centre.transform(x[train_rows]).var(0).mean())
        with threadpool_limits(1):  # BLAS threads only slow these small fits down
            fitted = model.fit(centre.transform(x[train_rows]) / scale, prepared.codes[train_rows])
        predicted[test_rows] = fitted.predict(centre.transform(x[test_rows]) / scale)
    return score_predictions(prepared.codes, predicted, prepared)["f1"]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    ("loader", "kind"),
    [(load_digits, "multiclass"), (load_breast_cancer, "binary")],
    ids=["digits", "cancer"],
)
def test_f1_matches_sklearn_on_the_same_folds(loader, kind):
    data = loader()
    x, labels = data.data.astype(np.float32), data.target.astype(str)
    fixed = probes.LogRegSettings(C_grid=())  # sklearn's objective at its default C
    ours = evaluate_probes({"fused": x}, labels, kind, pca_components=None, logreg=fixed)
    ours = ours.set_index("probe")["f1"]
    balanced = "balanced" if kind == "binary" else None  # our binary logreg weights classes as sklearn's
    reference_logreg = sklearn_oof_f1(
        x, labels, kind, LogisticRegression(max_iter=1000, class_weight=balanced)
    )
    reference_mlp = sklearn_oof_f1(x, labels, kind, MLPClassifier(random_state=0))
    assert abs(ours["logreg"] - reference_logreg) < 0.02
    assert abs(ours["mlp"] - reference_mlp) < 0.02


def test_the_l2_strength_chosen_on_training_rows_beats_a_fixed_one_on_a_noisy_label():
    """A price-like task: the label is a noisy function of the product type (40 types, each with a main
    class that 60% of its products carry). sklearn's C=1 fits the noise; the grid's choice on a validation
    split of each training fold regularises it away, and does not over-regularise a clean task."""
    rng = np.random.default_rng(0)
    centres, main = rng.normal(size=(40, 256)), rng.integers(5, size=40)
    kind = rng.integers(40, size=600)
    x = (centres[kind] + rng.normal(size=(600, 256))).astype(np.float32)
    y = np.where(rng.random(600) < 0.6, main[kind], rng.integers(5, size=600)).astype(str)
    clean_x, clean_y = clusters(400, 8, 3, spread=0.7, seed=5)
    options = {"probes": ("logreg",), "pca_components": None}
    tuned, fixed = probes.LogRegSettings(), probes.LogRegSettings(C_grid=())
    f1 = {
        (name, settings.C_grid != ()): evaluate_probes(
            {"fused": v}, labels, "multiclass", logreg=settings, **options
        )["f1"].iloc[0]
        for name, v, labels in (("noisy", x, y), ("clean", clean_x, clean_y))
        for settings in (tuned, fixed)
    }
    assert f1["noisy", True] > f1["noisy", False] + 0.08  # measured 0.58 vs 0.42
    assert f1["clean", True] > f1["clean", False] - 0.02


def test_listings_of_one_product_stay_in_one_fold():
    """Every product listed twice with the same vector and a random label: with its twin in the training
    fold a probe recalls the label; with the listings kept together it can only guess."""
    rng = np.random.default_rng(6)
    products = rng.normal(size=(150, 64)).astype(np.float32)
    labels = rng.choice(["a", "b", "c"], 150)
    x, y, groups = np.repeat(products, 2, axis=0), np.repeat(labels, 2), np.repeat(np.arange(150), 2)
    prepared = prepare_labels(y, "multiclass", 5)
    for train_rows, test_rows in stratified_folds(prepared.codes, 5, seed=0, groups=groups):
        assert not set(groups[train_rows]) & set(groups[test_rows])
    options = {"probes": ("logreg",), "pca_components": None}
    split = evaluate_probes({"fused": x}, y, "multiclass", **options)["f1"].iloc[0]
    together = evaluate_probes({"fused": x}, y, "multiclass", groups=groups, **options)["f1"].iloc[0]
    assert split > 0.7 and together < 0.45  # measured 0.76 and 0.35; chance is 0.33
    # inside a training fold, the logistic probe's validation split keeps them together as well
    codes = torch.from_numpy(prepared.codes)
    fit_rows, validation_rows = probes.solvers._validation_split(codes, 0.2, torch.Generator(), groups)
    assert not set(groups[fit_rows.numpy()]) & set(groups[validation_rows.numpy()])
    assert 0.15 < len(validation_rows) / len(groups) < 0.25
    # no group of two rows: the folds are StratifiedKFold's, as without groups
    singles = stratified_folds(prepared.codes, 5, seed=0, groups=np.full(len(y), -1))
    for (train, test), (train_plain, test_plain) in zip(
        singles, stratified_folds(prepared.codes, 5, seed=0), strict=True
    ):
        assert np.array_equal(test, test_plain) and np.array_equal(train, train_plain)


def test_folds_of_the_same_rows_are_split_once(monkeypatch):
    """A task's three probe runs ask for the same folds: StratifiedGroupKFold runs once, and a caller that
    changes its copy does not change the next caller's folds."""
    from mm_pipeline.evaluation.probes import protocol

    splits = []
    real = protocol.StratifiedGroupKFold

    class Counting(real):
        def split(self, *args, **kwargs):
            splits.append(1)
            return super().split(*args, **kwargs)

    monkeypatch.setattr(protocol, "StratifiedGroupKFold", Counting)
    protocol._cached_folds.cache_clear()
    codes = np.repeat(np.arange(3), 40)
    groups = np.repeat(np.arange(60), 2)
    first = stratified_folds(codes, 5, seed=3, groups=groups)
    expected = [test.copy() for _, test in first]
    first[0][1][:] = -1
    again = stratified_folds(codes.astype(np.int32), 5, seed=3, groups=groups)
    assert len(splits) == 1
    assert all(np.array_equal(test, kept) for (_, test), kept in zip(again, expected, strict=True))
    stratified_folds(codes, 5, seed=4, groups=groups)  # another seed, other folds
    assert len(splits) == 2


def test_probe_keeps_the_weights_of_a_vectors_parts():
    """A fused vector whose noisy part carries a small weight scores like its informative part: the probe
    scales the vector as a whole, so it does not blow the down-weighted noise up to the signal's size."""
    x, y = clusters(300, 16, 4, spread=0.6, seed=4)
    noise = np.random.default_rng(4).normal(size=(300, 256)).astype(np.float32)
    alone = evaluate_probes({"fused": x}, y, "multiclass", probes=("logreg",), pca_components=None)
    weighted = np.hstack([x, 0.05 * noise])
    equal = np.hstack(
        [x / x.std(0), noise]
    )  # every dimension at the same scale, as per-dimension scaling gives
    f1 = {
        name: evaluate_probes({"fused": v}, y, "multiclass", probes=("logreg",), pca_components=None)[
            "f1"
        ].iloc[0]
        for name, v in (("weighted", weighted), ("equal", equal))
    }
    assert f1["weighted"] >= alone["f1"].iloc[0] - 0.02
    assert f1["equal"] < f1["weighted"] - 0.1


def test_binary_scores_the_requested_or_minority_class():
    x, y = clusters(300, 8, 2, spread=1.0, seed=2)
    y = np.where(np.arange(300) < 60, "rare", "common")  # rare = first 60 rows
    x[:60] += 1.5
    by_default = evaluate_probes({"fused": x}, y, "binary", probes=("logreg",), pca_components=None)
    as_common = evaluate_probes(
        {"fused": x}, y, "binary", probes=("logreg",), pca_components=None, positive_label="common"
    )
    assert by_default["f1"].iloc[0] < as_common["f1"].iloc[0]  # the minority class is the harder one


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_rare_positive_class_is_found_with_balanced_weights():
    """5% positives, separable but close: unweighted logits stay below 0 for many positives."""
    rng = np.random.default_rng(3)
    y = np.where(rng.random(1000) < 0.05, "adult", "not_adult")
    x = rng.normal(size=(1000, 64)).astype(np.float32)
    x[y == "adult", :8] += 0.9
    fixed = probes.LogRegSettings(C_grid=())  # sklearn's objective at its default C
    options = {"probes": ("logreg",), "pca_components": None}
    balanced = evaluate_probes({"fused": x}, y, "binary", logreg=fixed, **options)
    plain = evaluate_probes(
        {"fused": x}, y, "binary", logreg=probes.LogRegSettings(balanced_binary=False, C_grid=()), **options
    )
    assert balanced["recall"].iloc[0] > plain["recall"].iloc[0] + 0.2
    assert balanced["f1"].iloc[0] > plain["f1"].iloc[0]
    reference = sklearn_oof_f1(x, y, "binary", LogisticRegression(max_iter=1000, class_weight="balanced"))
    assert abs(balanced["f1"].iloc[0] - reference) < 0.02


def test_bootstrap_f1_is_paired_and_centred_on_the_point_estimate():
    x, y = clusters(400, 8, 3, spread=0.8, seed=4)
    run = probes.cross_validate({"fused": x}, y, "multiclass", probes=("logreg", "mlp"), pca_components=None)
    logreg, mlp = run.predictions["fused", "logreg"], run.predictions["fused", "mlp"]
    point = score_predictions(run.prepared.codes, logreg, run.prepared)["f1"]
    resampled = probes.bootstrap_f1(run.prepared, [logreg, logreg, mlp, run.prepared.codes])
    assert resampled.shape == (4, 200)
    assert np.array_equal(resampled[0], resampled[1])  # same resamples for every vector
    assert abs(resampled[0].mean() - point) < 0.02 and 0.005 < resampled[0].std() < 0.06
    assert (resampled[3] == 1.0).all()  # perfect predictions score 1 on every resample
    assert np.std(resampled[0] - resampled[2]) < np.std(resampled[0]) + np.std(resampled[2])


def test_insufficient_data_is_a_specific_error():
    x, y = clusters(100, 4, 2, spread=2.0)
    with pytest.raises(InsufficientData, match="labelled rows"):
        evaluate_probes({"fused": x[:10]}, y[:10], "binary")
    with pytest.raises(InsufficientData, match="one class"):
        evaluate_probes({"fused": x}, np.full(100, "a"), "binary")
    with pytest.raises(InsufficientData, match="single labelled row"):
        evaluate_probes({"fused": x}, np.r_[["a"], np.full(99, "b")], "binary")
    with pytest.raises(ValueError, match="does not match"):
        evaluate_probes({"fused": x[:50]}, y, "binary")


def test_rare_classes_merge_into_other_and_folds_shrink_for_small_binary_classes():
    labels = np.array(["a"] * 40 + ["b"] * 40 + ["c"] * 3 + ["d"] * 2)
    prepared = prepare_labels(labels, "multiclass", 5)
    assert prepared.classes.tolist() == ["a", "b", "other"] and prepared.n_splits == 5
    prepared = prepare_labels(np.array(["a"] * 40 + ["b"] * 40 + ["c"] * 3), "multiclass", 5)
    assert prepared.classes.tolist() == ["a", "b"] and prepared.keep.sum() == 80  # "other" too small: dropped
    prepared = prepare_labels(np.array(["a"] * 40 + ["b"] * 3), "binary", 5)
    assert prepared.n_splits == 3 and prepared.classes[prepared.positive] == "b"


def test_pca_is_fitted_inside_training_folds_only(pca_fits):
    x, y = clusters(200, 16, 2, spread=2.0)
    fitted_on = pca_fits
    evaluate_probes({"fused": x}, y, "binary", probes=("logreg",), pca_components=4)
    prepared = prepare_labels(y, "binary", 5)
    assert fitted_on_training_folds(fitted_on, x, stratified_folds(prepared.codes, 5, seed=0))


def test_results_are_deterministic_for_a_seed():
    x, y = clusters(300, 16, 3, spread=0.5)
    first = evaluate_probes({"fused": x}, y, "multiclass", seed=3).drop(columns="seconds")
    second = evaluate_probes({"fused": x}, y, "multiclass", seed=3).drop(columns="seconds")
    pd.testing.assert_frame_equal(first, second)


@pytest.fixture
def fit_threads(monkeypatch) -> set[str]:
    """Names of the threads the logistic probes are fitted on, on what looks to the probes like 3 cores."""
    monkeypatch.setattr(probes.solvers.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    names = set()
    fit = probes.solvers.fit_predict_logreg

    def recording_fit(*args, **kwargs):
        names.add(threading.current_thread().name)
        return fit(*args, **kwargs)

    monkeypatch.setattr(probes.solvers, "fit_predict_logreg", recording_fit)
    return names


def test_fits_side_by_side_predict_as_one_fit_after_another(fit_threads):
    """The fits of a task run on every core at once; the predictions are those of one fit at a time."""
    x, y = clusters(300, 16, 3, spread=0.5)
    features = {"text": x[:, :8], "fused": x}
    side_by_side = probes.cross_validate(features, y, "multiclass", seed=3)
    assert len({name for name in fit_threads if name.startswith("probe-fit")}) > 1
    fit_threads.clear()
    one_at_a_time = probes.cross_validate(features, y, "multiclass", seed=3, n_threads=1)
    assert fit_threads == {threading.main_thread().name}
    for row, predicted in side_by_side.predictions.items():
        assert np.array_equal(predicted, one_at_a_time.predictions[row]), row


def test_log_price_ridge_beats_the_mean_and_skips_missing_prices():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    target = x @ rng.normal(size=8) + 7 + rng.normal(scale=0.1, size=300)
    target[:10] = np.nan
    result = regress_log_price({"fused": x, "noise": rng.normal(size=(300, 8))}, target)
    assert result["fused"]["n"] == 290
    assert result["fused"]["mse"] < 0.05 < result["fused"]["baseline_mse"]
    assert result["noise"]["r2"] < 0.1


def test_f1_se_is_each_rows_bootstrap_spread_and_shrinks_with_more_rows():
    x, y = clusters(400, 8, 3, spread=0.8, seed=4)
    run = probes.cross_validate({"fused": x}, y, "multiclass", pca_components=None)
    table = run.table()
    for row in table.itertuples():
        resampled = probes.bootstrap_f1(run.prepared, [run.predictions[row.features, row.probe]])
        assert row.f1_se == pytest.approx(np.std(resampled[0])) and row.f1_se > 0
    xl, yl = clusters(1600, 8, 3, spread=0.8, seed=4)
    larger = evaluate_probes({"fused": xl}, yl, "multiclass", pca_components=None)
    assert (larger["f1_se"].to_numpy() < 0.7 * table["f1_se"].to_numpy()).all()  # ~1/sqrt(4) of it


def test_fits_run_one_at_a_time_when_memory_holds_only_one(fit_threads, monkeypatch):
    """The memory available caps how many fits run side by side: room for one job means the calling thread
    runs them all, with the same predictions."""
    x, y = clusters(300, 16, 3, spread=0.5)
    side_by_side = probes.cross_validate({"fused": x}, y, "multiclass", seed=3, pca_components=None)
    assert any(name.startswith("probe-fit") for name in fit_threads)
    job_bytes = 3 * len(x) * x.shape[1] * 4  # what cross_validate reckons one job holds
    scarce = SimpleNamespace(available=job_bytes + 1)
    monkeypatch.setattr(probes.solvers.psutil, "virtual_memory", lambda: scarce)
    fit_threads.clear()
    one_at_a_time = probes.cross_validate({"fused": x}, y, "multiclass", seed=3, pca_components=None)
    assert fit_threads == {threading.main_thread().name}
    for row, predicted in side_by_side.predictions.items():
        assert np.array_equal(predicted, one_at_a_time.predictions[row]), row


def test_a_shared_queue_runs_the_fits_of_several_runs_in_one_pool_with_their_own_predictions(fit_threads):
    """Runs that queue their fits predict nothing until the queue runs; then every fit of both runs goes
    through one pool of side-by-side workers, and each run predicts as it does when run on its own."""
    x, y = clusters(300, 16, 3, spread=0.5)
    words = np.array([f"word{i % 7} token{i % 5}" for i in range(len(y))])
    texts = [f"{label} {w}" for label, w in zip(y, words, strict=True)]
    pixels = np.random.default_rng(1).normal(size=(len(y), 48)).astype(np.float32)
    queue = probes.FitQueue()
    queued = probes.cross_validate({"fused": x}, y, "multiclass", seed=3, queue=queue)
    queued_references = probes.reference_probes(texts, pixels, y, "multiclass", seed=3, queue=queue)
    assert fit_threads == set() and len(queue.jobs) == 2 * 5 + 5
    queue.run()
    assert queue.jobs == [] and len({n for n in fit_threads if n.startswith("probe-fit")}) > 1
    alone = probes.cross_validate({"fused": x}, y, "multiclass", seed=3)
    references = probes.reference_probes(texts, pixels, y, "multiclass", seed=3)
    for run, expected in ((queued, alone), (queued_references, references)):
        for row, predicted in expected.predictions.items():
            assert np.array_equal(run.predictions[row], predicted), row
