"""Benchmark of the proxy-task probes on synthetic embeddings shaped like the catalogue's.

    python benchmarks/bench_probes.py            # 30k x (512 text + 512 image), six tasks
    python benchmarks/bench_probes.py --quick    # small run

Part 1 times the fine-tuned rows of all six tasks (text, image, fused, pca_fused x logreg, mlp x 5 folds).
Part 2 compares F1 and time against sklearn LogisticRegression / MLPClassifier on the same folds.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.preprocessing import StandardScaler

from mm_pipeline.evaluation.probes import (
    prepare_labels,
    score_predictions,
    stratified_folds,
)

# name -> (kind, class weights); sub_category nests four sub-categories under each category
TASKS = {
    "category": ("multiclass", None),
    "sub_category": ("multiclass", None),
    "price_range": ("multiclass", None),
    "gender": ("binary", [0.6, 0.4]),
    "age_group": ("binary", [0.75, 0.25]),
    "isadult": ("binary", [0.95, 0.05]),
}
N_CATEGORIES = 10
SUBS_PER_CATEGORY = 4
LATENT_DIM = 64
LATENT_NOISE = 0.4
NOISE = 1.0
NOISE_DECAY = 0.5
SIGNAL = {"category": 0.6, "sub_category": 0.45, "price_range": 0.4, "gender": 0.6, "age_group": 0.6, "isadult": 0.8}


def make_synthetic(n: int, half_dim: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Two L2-normalised halves (text, image): label prototypes plus noise in a low-dimensional latent space,
    mapped to ``half_dim`` dimensions, plus noise with a decaying spectrum like real embeddings.

    The structure (prototypes, mappings, spectra) depends on ``seed`` only, so subsets of any size share it.
    """
    structure, sampler = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    mean_log_price = structure.normal(6.5, 0.6, N_CATEGORIES * SUBS_PER_CATEGORY)
    category_weights = 1.0 / np.arange(1, N_CATEGORIES + 1)
    category = sampler.choice(N_CATEGORIES, n, p=category_weights / category_weights.sum())
    sub_category = category * SUBS_PER_CATEGORY + sampler.choice(SUBS_PER_CATEGORY, n, p=[0.4, 0.3, 0.2, 0.1])
    log_price = mean_log_price[sub_category] + sampler.normal(0, 0.7, n)
    price_range = np.searchsorted(np.quantile(log_price, [0.2, 0.4, 0.6, 0.8]), log_price)
    codes = {"category": category, "sub_category": sub_category, "price_range": price_range}
    for name in ("gender", "age_group", "isadult"):
        codes[name] = sampler.choice(2, n, p=TASKS[name][1])
    halves = {}
    for half in ("text", "image"):
        latent = sampler.normal(size=(n, LATENT_DIM)) * LATENT_NOISE
        for name, strength in SIGNAL.items():
            prototypes = structure.normal(size=(codes[name].max() + 1, LATENT_DIM)) / np.sqrt(LATENT_DIM)
            latent += strength * structure.uniform(0.5, 1.5) * prototypes[codes[name]]
        mixing = structure.normal(size=(LATENT_DIM, half_dim)) / np.sqrt(LATENT_DIM)
        noise_basis = np.linalg.qr(structure.normal(size=(half_dim, half_dim)))[0]
        spectrum = NOISE * np.arange(1, half_dim + 1) ** -NOISE_DECAY
        x = latent @ mixing + (sampler.normal(size=(n, half_dim)) * spectrum) @ noise_basis
        halves[half] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    features = {"text": halves["text"], "image": halves["image"]}
    features["fused"] = np.hstack([halves["text"], halves["image"]])
    labels = {name: np.array([f"{name}_{c}" for c in codes[name]]) for name in TASKS}
    return features, labels


def sklearn_oof(x: np.ndarray, labels: np.ndarray, kind: str, model_factory, seed: int) -> tuple[dict, float]:
    prepared = prepare_labels(labels, kind, 5)
    codes = prepared.codes
    predicted = np.empty(len(codes), np.int64)
    started = time.perf_counter()
    for train_rows, test_rows in stratified_folds(codes, prepared.n_splits, seed):
        scaler = StandardScaler().fit(x[train_rows])
        model = model_factory().fit(scaler.transform(x[train_rows]), codes[train_rows])
        predicted[test_rows] = model.predict(scaler.transform(x[test_rows]))
    return score_predictions(codes, predicted, prepared), time.perf_counter() - started
