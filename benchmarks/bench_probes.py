"""Benchmark of the proxy-task probes on synthetic embeddings shaped like the catalogue's.

    python benchmarks/bench_probes.py                 # 30k x (512 text + 512 image), six tasks
    python benchmarks/bench_probes.py --n 10000 --dim 512
    python benchmarks/bench_probes.py --quick         # small run

Part 1 times the fine-tuned rows of all six tasks (text, image, fused, pca_fused x logreg, mlp x 5 folds),
every task labelled on all rows (in the catalogue gender and age cover only clothes: a worst case).
Part 2 compares F1 and time with sklearn LogisticRegression / MLPClassifier on the same folds and rows.
Part 3 times one fold at full size against sklearn (where the speed-up shows: sklearn trains its MLP until
the training loss stalls, tens of epochs at 30k rows, ours for a fixed ~5 epochs).
Part 4 times the whole tables as the metric assets build them (``evaluate_task``: fine-tuned and base rows,
the TF-IDF, pixel and TF-IDF+pixel references on the generated catalogue's Russian text and photos
(tensor store at the pipeline's 96 px), bootstrap errors, neighbour precision, price regression) on a
generated catalogue of the same size, labels derived from its columns.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mm_pipeline.catalog.contract import validate_batch
from mm_pipeline.evaluation.probes import (
    REFERENCE_FEATURES,
    LogRegSettings,
    MLPSettings,
    cross_validate,
    fit_predict_logreg,
    fit_predict_mlp,
    prepare_labels,
    score_predictions,
    stratified_folds,
    torch_threads,
)
from mm_pipeline.evaluation.references import pixel_features
from mm_pipeline.evaluation.tasks import EvalSet, evaluate_task
from mm_pipeline.prep.images import open_tensor_store, write_tensor_store
from mm_pipeline.prep.text import clean_products
from mm_pipeline.sample import generate_sample

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
SIGNAL = {
    "category": 0.6,
    "sub_category": 0.45,
    "price_range": 0.4,
    "gender": 0.6,
    "age_group": 0.6,
    "isadult": 0.8,
}

# sklearn's objective at its default C=1: what Parts 2 and 3 compare with sklearn's LogisticRegression
SKLEARN_C = LogRegSettings(C_grid=())


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


def sklearn_f1(x: np.ndarray, labels: np.ndarray, kind: str, model, seed: int) -> tuple[float, float]:
    """Out-of-fold F1 of an sklearn model on the folds and scaling cross_validate uses; (f1, seconds)."""
    prepared = prepare_labels(labels, kind, 5)
    predicted = np.empty(len(prepared.codes), np.int64)
    started = time.perf_counter()
    for train_rows, test_rows in stratified_folds(prepared.codes, prepared.n_splits, seed):
        scaler = StandardScaler().fit(x[train_rows])
        fitted = model.fit(scaler.transform(x[train_rows]), prepared.codes[train_rows])
        predicted[test_rows] = fitted.predict(scaler.transform(x[test_rows]))
    return score_predictions(prepared.codes, predicted, prepared)["f1"], time.perf_counter() - started


def time_all_tasks(
    features: dict[str, np.ndarray], labels: dict[str, np.ndarray], seed: int, n_threads: int | None
) -> None:
    n, dim = features["fused"].shape
    print(f"\n## Part 1: fine-tuned rows of six tasks, {n} rows, text/image {dim // 2}-d, fused {dim}-d")
    tables, wall, cpu = [], time.perf_counter(), time.process_time()
    for task, (kind, _) in TASKS.items():
        started = time.perf_counter()
        table = cross_validate(features, labels[task], kind, seed=seed, n_threads=n_threads).table()
        print(f"  {task}: {time.perf_counter() - started:.1f} s", flush=True)
        tables.append(table.assign(task=task, task_seconds=time.perf_counter() - started))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    results = pd.concat(tables)
    f1 = results.pivot_table(index="task", columns=["probe", "features"], values="f1", sort=False)
    f1.columns = [f"{probe}:{features}" for probe, features in f1.columns]
    summary = results.groupby("task", sort=False).agg(
        classes=("n_classes", "first"), seconds=("task_seconds", "first")
    )
    print((summary.join(f1)).round(3).to_string())
    per_probe = results.groupby(["probe", "features"], sort=False)["seconds"].sum().round(1)
    print("seconds per probe and feature set (all tasks):", per_probe.to_dict())
    print(f"TOTAL six tasks: {wall:.1f} s wall, {cpu:.1f} s CPU")


def compare_with_sklearn(
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    rows: int,
    seed: int,
    n_threads: int | None,
) -> None:
    x = features["fused"][:rows]
    print(
        f"\n## Part 2: parity with sklearn on {len(x)} rows, fused {x.shape[1]}-d, same 5 folds and scaling"
    )
    lines = []
    for task in ("category", "sub_category", "gender"):
        kind, y = TASKS[task][0], labels[task][:rows]
        ours = cross_validate(
            {"fused": x}, y, kind, seed=seed, pca_components=None, n_threads=n_threads, logreg=SKLEARN_C
        ).table()
        ours = ours.set_index("probe")
        references = {
            "logreg": [
                LogisticRegression(max_iter=1000, class_weight="balanced" if kind == "binary" else None)
            ],
            "mlp": [MLPClassifier(random_state=seed), MLPClassifier(random_state=seed + 1)],
        }
        for probe, models in references.items():
            with threadpool_limits(n_threads):  # sklearn's BLAS gets the same threads as torch
                (f1, seconds), *others = [sklearn_f1(x, y, kind, model, seed) for model in models]
            line = {
                "task": task,
                "probe": probe,
                "ours_f1": ours.loc[probe, "f1"],
                "sklearn_f1": f1,
                "gap": ours.loc[probe, "f1"] - f1,
                "sklearn_seed_gap": abs(others[0][0] - f1) if others else np.nan,
                "ours_s": ours.loc[probe, "seconds"],
                "sklearn_s": seconds,
            }
            lines.append({**line, "speedup": seconds / line["ours_s"]})
    table = pd.DataFrame(lines)
    print(table.round(4).to_string(index=False))
    print(
        f"max |gap|: {table['gap'].abs().max():.4f} (sklearn MLP seed-to-seed: up to {table['sklearn_seed_gap'].max():.4f})"
    )


def compare_one_full_fold(
    features: dict[str, np.ndarray], labels: dict[str, np.ndarray], seed: int, n_threads: int | None
) -> None:
    """Full-size speed: one fold per task on fused vectors, ours against sklearn (F1 on that fold)."""
    x = features["fused"]
    print(f"\n## Part 3: one fold at full size ({len(x)} rows), fused {x.shape[1]}-d, ours vs sklearn")
    ours = {
        "logreg": partial(fit_predict_logreg, settings=SKLEARN_C),
        "mlp": partial(fit_predict_mlp, settings=MLPSettings()),
    }
    lines = []
    for task in ("category", "sub_category"):
        prepared = prepare_labels(labels[task], TASKS[task][0], 5)
        train_rows, test_rows = stratified_folds(prepared.codes, prepared.n_splits, seed)[0]
        scaler = StandardScaler().fit(x[train_rows])
        x_train, x_test = scaler.transform(x[train_rows]), scaler.transform(x[test_rows])
        y_train, y_test = prepared.codes[train_rows], prepared.codes[test_rows]
        references = {"logreg": LogisticRegression(max_iter=1000), "mlp": MLPClassifier(random_state=seed)}
        for probe, fit_predict in ours.items():
            with torch_threads(n_threads):
                started = time.perf_counter()
                predicted = fit_predict(
                    torch.from_numpy(x_train).float(),
                    torch.from_numpy(y_train),
                    torch.from_numpy(x_test).float(),
                    len(prepared.classes),
                    generator=torch.Generator().manual_seed(seed),
                )
                ours_seconds = time.perf_counter() - started
            with threadpool_limits(n_threads):
                started = time.perf_counter()
                reference = references[probe].fit(x_train, y_train).predict(x_test)
                sklearn_seconds = time.perf_counter() - started
            lines.append(
                {
                    "task": task,
                    "probe": probe,
                    "ours_f1": f1_score(y_test, predicted, average="weighted"),
                    "sklearn_f1": f1_score(y_test, reference, average="weighted"),
                    "ours_s": ours_seconds,
                    "sklearn_s": sklearn_seconds,
                    "speedup": sklearn_seconds / ours_seconds,
                }
            )
    table = pd.DataFrame(lines)
    table.insert(4, "gap", table["ours_f1"] - table["sklearn_f1"])
    print(table.round(4).to_string(index=False))


def time_whole_tables(n: int, half_dim: int, seed: int) -> None:
    print(f"\n## Part 4: whole metric tables (evaluate_task) on a generated catalogue of {n} products")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        generate_sample(Path(tmp), n=n, batches=1, seed=seed, image_size=32)
        batch = Path(tmp) / "batches" / "batch_000.parquet"
        products = clean_products(validate_batch(batch, Path(tmp) / "images").accepted)
        store = Path(tmp) / "image_tensors.npy"
        write_tensor_store(products["image_file"].tolist(), store, 96, workers=os.cpu_count() or 1)
        print(
            f"  catalogue generated, cleaned and decoded: {len(products)} products, "
            f"{time.perf_counter() - started:.0f} s"
        )
        started = time.perf_counter()
        tuned, _ = make_synthetic(len(products), half_dim, seed)
        base, _ = make_synthetic(len(products), half_dim, seed + 1)
        data = EvalSet.build(
            products,
            {k: tuned[k] for k in ("image", "text", "fused")},
            {k: base[k] for k in ("image", "text")},
            pixel_features(open_tensor_store(store)),
        )
    print(f"  eval set built (thumbnails, neighbour references): {time.perf_counter() - started:.1f} s")
    lines, wall = [], time.perf_counter()
    for task in TASKS:
        started = time.perf_counter()
        result = evaluate_task(task, data)
        table = result.table
        lines.append(
            {
                "task": task,
                "status": result.status,
                "labelled": result.extras.get("labelled", 0),
                "rows": len(table),
                "seconds": time.perf_counter() - started,
                "fine_tuned_s": table.loc[table["model"] == "fine_tuned", "seconds"].sum()
                if len(table)
                else 0,
                "base_s": table.loc[table["model"] == "base", "seconds"].sum() if len(table) else 0,
                "references_s": table.loc[table["model"].isin(REFERENCE_FEATURES), "seconds"].sum()
                if len(table)
                else 0,
                "neighbours_s": result.extras.get("neighbour_seconds", 0.0),
            }
        )
        print(f"  {task}: {lines[-1]['seconds']:.1f} s", flush=True)
    print(pd.DataFrame(lines).round(1).to_string(index=False))
    print(f"TOTAL whole tables, six tasks: {time.perf_counter() - wall:.1f} s wall (target <= 900 s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30_000, help="products")
    parser.add_argument(
        "--dim", type=int, default=1024, help="fused dimension (text and image get half each)"
    )
    parser.add_argument("--parity-rows", type=int, default=3_000, help="rows for the sklearn comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="3000 x 256, parity on 1000 rows")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores for large inputs)")
    parser.add_argument("--skip-sklearn", action="store_true", help="parts 1 and 4 only (no sklearn runs)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.dim, args.parity_rows = 3_000, 256, 1_000
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    cores = len(os.sched_getaffinity(0))
    threads = args.threads or f"{cores} (all cores)"
    print(f"# bench_probes: {cores} cores, torch threads {threads}, load average {os.getloadavg()[0]:.1f}")
    features, labels = make_synthetic(args.n, args.dim // 2, args.seed)
    # the first torch optimizer imports torch._dynamo (seconds): keep that out of the timings
    cross_validate({"fused": features["fused"][:100]}, labels["gender"][:100], "binary", pca_components=None)
    time_all_tasks(features, labels, args.seed, args.threads)
    if not args.skip_sklearn:
        compare_with_sklearn(features, labels, min(args.parity_rows, args.n), args.seed, args.threads)
        compare_one_full_fold(features, labels, args.seed, args.threads)
    time_whole_tables(args.n, args.dim // 2, args.seed)
    print(f"# load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
