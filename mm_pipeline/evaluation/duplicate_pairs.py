"""The duplicates stage over the served catalogue (no Dagster here): the duplicates metric with its ground
truth, and the candidate pairs above its threshold for review.

Ground truth is the catalogue's ``dup_group`` column when it holds at least ``MIN_GROUPS`` groups of two or
more eval products; otherwise synthetic re-listings (:mod:`mm_pipeline.evaluation.relisting`): the first
``RELISTED_PRODUCTS`` eval products, each with a perturbed photo and a reworded description, embedded the
way the catalogue was. Every vector kind is scored on cosine (unit rows) beside the references that learn
nothing (:func:`mm_pipeline.evaluation.references.reference_vectors`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mm_pipeline.evaluation.duplicates import (
    SCORE_DECIMALS,
    count_groups,
    evaluate_duplicates,
    headline,
    unique_pairs,
)
from mm_pipeline.evaluation.references import images_of, reference_vectors
from mm_pipeline.evaluation.relisting import MIN_GROUPS, RELISTED_PRODUCTS, make_relistings
from mm_pipeline.evaluation.similarity import SimilarityIndex
from mm_pipeline.evaluation.summary import OK, MetricSummary
from mm_pipeline.evaluation.tasks import EvalSet, save_metric
from mm_pipeline.inference.encoders import BASE_FUSION_WEIGHTS, OnnxEncoders, fuse, l2_normalize
from mm_pipeline.layout import Layout
from mm_pipeline.model.clip import encode_products, load_folder
from mm_pipeline.model.pairs import BatchFiles, load_pairs
from mm_pipeline.model.split import group_codes
from mm_pipeline.storage import pin, write_parquet

TASK = "duplicates"
GROUND_TRUTH_GROUPS = "dup_group column"
GROUND_TRUTH_RELISTINGS = "synthetic re-listings of eval products (perturbed photo, reworded description)"


@dataclass(frozen=True)
class DuplicatesMetric:
    summary: (
        MetricSummary  # task, status, ground_truth, groups and the headline numbers (duplicates.headline)
    )
    table: pd.DataFrame  # one row per vector kind (DuplicateReport.summary)

    @property
    def relisted(self) -> bool:
        """Whether the ground truth is synthetic re-listings (then ``groups`` counts the pairs built)."""
        return self.summary.ground_truth == GROUND_TRUTH_RELISTINGS


def duplicates_metric(
    layout: Layout, data: EvalSet, batches: Sequence[BatchFiles], encoders: Callable[[], OnnxEncoders]
) -> DuplicatesMetric:
    """Score the eval products' vectors (fine-tuned kinds, ``base_fused``, references) on the chosen ground
    truth and save the metric (``layout.metric_dir("duplicates")``).

    ``batches`` are the materialized batches the eval products come from; ``encoders`` returns the ONNX
    encoders the catalogue was embedded with, called only when re-listings are needed."""
    groups = group_codes(data.products)
    grouped = count_groups(groups)
    vectors = {**data.tuned, "base_fused": data.base["fused"]}
    nm = data.products["nm"].to_numpy()
    if grouped >= MIN_GROUPS:
        ground_truth = GROUND_TRUTH_GROUPS
        vectors |= reference_vectors(data.products["text"].tolist(), images_of(batches, nm))
    else:
        ground_truth = GROUND_TRUTH_RELISTINGS
        vectors, nm, groups = relisted_vectors(layout, data, vectors, batches, encoders())
        grouped = int(groups.max()) + 1
    # cosine scores for every kind, so thresholds read the same way
    report = evaluate_duplicates({k: l2_normalize(v) for k, v in vectors.items()}, nm, groups)
    table = report.summary()
    numbers = headline(table, report.pair_f1_resamples)
    summary = MetricSummary.from_dict(
        {"task": TASK, "status": OK, "ground_truth": ground_truth, "groups": grouped, **numbers}
    )
    save_metric(layout, TASK, summary, table)
    return DuplicatesMetric(summary, table)


def relisted_vectors(
    layout: Layout,
    data: EvalSet,
    vectors: dict[str, np.ndarray],
    batches: Sequence[BatchFiles],
    encoders: OnnxEncoders,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """``(vectors, nm, groups)`` of the first ``RELISTED_PRODUCTS`` eval products followed by one synthetic
    re-listing each: every kind of ``vectors`` (the fine-tuned ones by ``encoders``, ``base_fused`` by the base
    model) plus the references. Re-listings get the negated nm: they exist only in this metric."""
    base = load_folder(layout.model_dir("base"))
    pairs, _ = load_pairs(batches, base.tokenizer, layout.token_dir)
    chosen = data.products["nm"].to_numpy()[:RELISTED_PRODUCTS]
    rows = pd.Series(np.arange(len(pairs)), index=pairs.nm).loc[chosen].to_numpy()
    original_texts, original_images = data.products["text"].tolist()[: len(chosen)], pairs.images(rows)
    texts, images = make_relistings(original_texts, original_images)
    relisted = encoders.encode(texts, images)
    relisted["base_fused"] = fuse(
        encode_products(base.clip, base.tokenizer, texts, images), BASE_FUSION_WEIGHTS
    )
    count = len(chosen)
    combined = {k: np.concatenate([vectors[k][:count], relisted[k]]) for k in vectors}
    combined |= reference_vectors([*original_texts, *texts], np.concatenate([original_images, images]))
    groups = np.concatenate([np.arange(count), np.arange(count)])
    return combined, np.concatenate([chosen, -chosen]), groups


def write_review_pairs(
    layout: Layout, lookup: pd.DataFrame, vectors: np.ndarray, k: int, threshold: float
) -> pd.DataFrame:
    """Candidate duplicate pairs over the whole catalogue for review, written to ``layout.duplicate_pairs``:
    each product's ``k`` nearest neighbours in the current index, as unordered pairs at or above
    ``threshold``, best first. ``lookup`` (nm, title per row) and float32 ``vectors`` are the served catalogue,
    rows aligned. Columns: nm_a < nm_b, score, title_a, title_b."""
    index = SimilarityIndex.load(pin(layout.index_dir) / layout.index_file.name)
    scores, ids = index.search(vectors, k + 1)
    nm_a, nm_b, score = unique_pairs(lookup["nm"].to_numpy(), ids, scores)
    score = np.round(score, SCORE_DECIMALS)  # as the metric rounds them: its threshold admits the same ties
    keep = score >= threshold
    pairs = pd.DataFrame({"nm_a": nm_a[keep], "nm_b": nm_b[keep], "score": score[keep]})
    pairs = pairs.sort_values("score", ascending=False, ignore_index=True)
    titles = lookup.set_index("nm")["title"]
    pairs["title_a"] = titles.reindex(pairs["nm_a"]).to_numpy()
    pairs["title_b"] = titles.reindex(pairs["nm_b"]).to_numpy()
    write_parquet(pairs, layout.duplicate_pairs)
    return pairs
