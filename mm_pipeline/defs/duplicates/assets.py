"""Duplicates: faiss similarity index over fused vectors, the duplicates metric with its gate, review pairs."""

import json

import dagster as dg
import numpy as np
import pandas as pd

from mm_pipeline.defs.catalogue_index import catalogue_lookup
from mm_pipeline.defs.embeddings.assets import checked_encoders
from mm_pipeline.defs.metrics.assets import (
    EVALUATION_GROUP,
    ONE_ROW_PER_NM,
    MetricGates,
    base_model_embeddings,
    gate_result,
    load_eval_set,
    one_row_per_nm_result,
)
from mm_pipeline.defs.resources import PipelineSettings, materialized_batches
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.evaluation.duplicates import count_groups, evaluate_duplicates, headline
from mm_pipeline.evaluation.references import images_of, reference_vectors
from mm_pipeline.evaluation.relisting import MIN_GROUPS, RELISTED_PRODUCTS, make_relistings
from mm_pipeline.evaluation.similarity import SimilarityIndex, approximate_recall_at_k, build_index
from mm_pipeline.evaluation.tasks import save_metric
from mm_pipeline.inference.encoders import BASE_FUSION_WEIGHTS, fuse, l2_normalize
from mm_pipeline.model.clip import encode_products, load_folder
from mm_pipeline.model.split import group_codes
from mm_pipeline.model.train import load_pairs
from mm_pipeline.storage import atomic_dir, pin, write_parquet


class IndexSettings(dg.ConfigurableResource):
    """Exact search up to ``exact_max`` products, an approximate index above (parameters documented in README)."""

    exact_max: int = 200_000
    kind: str = "ivf"
    hnsw_m: int = 32
    ef_search: int = 128
    ivf_nprobe: int = 16
    review_k: int = 10


@dg.asset(
    group_name=EVALUATION_GROUP,
    automation_condition=dg.AutomationCondition.eager(),
    deps=["embeddings"],
    kinds={"faiss"},
    description="faiss inner-product index over the fused vectors of all served products (every registered "
    "batch, all embedded by the current model: it refuses naming stale batches), ids = nm, one row per nm.",
)
def similarity_index(
    context: dg.AssetExecutionContext, settings: PipelineSettings, index_settings: IndexSettings
) -> dg.MaterializeResult:
    lookup, vectors = catalogue_lookup(settings, context.instance)
    index = build_index(
        vectors,
        lookup["nm"].to_numpy(),
        exact_max=index_settings.exact_max,
        kind=index_settings.kind,
        hnsw_m=index_settings.hnsw_m,
        ef_search=index_settings.ef_search,
        ivf_nprobe=index_settings.ivf_nprobe,
        threads=settings.workers,
    )
    with atomic_dir(settings.layout.index_dir) as folder:
        index.save(folder / "fused.faiss")
        write_parquet(lookup, folder / "lookup.parquet")
    folder = settings.layout.index_dir
    recall = approximate_recall_at_k(index, vectors)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(folder / "fused.faiss")),
            "index_type": index.kind,
            "size": index.n,
            "dim": index.dim,
            "build_seconds": round(index.build_seconds, 3),
            "recall_at_10_vs_exact": recall,
            "params": dg.MetadataValue.json(index.params),
        }
    )


@dg.asset_check(
    asset=similarity_index,
    name=ONE_ROW_PER_NM,
    blocking=True,
    description="The index holds exactly one vector per nm (a repeated product names its batches).",
)
def index_one_row_per_nm(settings: PipelineSettings) -> dg.AssetCheckResult:
    return one_row_per_nm_result(pd.read_parquet(pin(settings.layout.index_dir) / "lookup.parquet"))


@dg.asset(
    group_name=EVALUATION_GROUP,
    automation_condition=dg.AutomationCondition.eager(),
    deps=["embeddings", base_model_embeddings],
    kinds={"faiss"},
    description="Identical products with different images/descriptions: recall@1/5/10 of finding a same-group "
    "listing, and pair precision/recall/F1 at a threshold chosen on one half of the groups and scored on the "
    "other; image, text, fused and the base model compared with references that learn nothing (TF-IDF of the "
    "text, PCA of 24×24 pixels, both concatenated).",
)
def metric_duplicates(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    data = load_eval_set(settings, context.instance)
    layout = settings.layout
    groups = group_codes(data.products)
    grouped = count_groups(groups)
    vectors = {**data.tuned, "base_fused": data.base["fused"]}
    nm = data.products["nm"].to_numpy()
    if grouped >= MIN_GROUPS:
        ground_truth = "dup_group column"
        images = images_of(materialized_batches(settings, context.instance), nm)
        vectors |= reference_vectors(data.products["text"].tolist(), images)
    else:
        ground_truth = "synthetic re-listings of eval products (perturbed photo, reworded description)"
        vectors, nm, groups = relisted_vectors(settings, context.instance, data, vectors)
        grouped = int(groups.max()) + 1
        context.log.info(f"no dup_group ground truth; built {grouped} synthetic re-listing pairs")
    # cosine scores for every kind, so thresholds read the same way
    report = evaluate_duplicates({k: l2_normalize(v) for k, v in vectors.items()}, nm, groups)
    table = report.summary()
    summary = {
        "task": "duplicates",
        "status": "ok",
        "ground_truth": ground_truth,
        "groups": grouped,
        **headline(table),
    }
    save_metric(layout, "duplicates", summary, table)
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in summary.items() if k != "task"},
            "results": dg.MetadataValue.md(markdown_table(table.to_dict("records"), 3)),
        }
    )


def relisted_vectors(settings: PipelineSettings, instance: dg.DagsterInstance, data, vectors: dict):
    """Originals plus one synthetic re-listing each, embedded by the fine-tuned ONNX and the base model, with
    the reference vectors of all of them."""
    layout = settings.layout
    base = load_folder(layout.model_dir("base"))
    pairs, _ = load_pairs(materialized_batches(settings, instance), base.tokenizer, layout.token_dir)
    chosen = data.products["nm"].to_numpy()[:RELISTED_PRODUCTS]
    rows = pd.Series(np.arange(len(pairs)), index=pairs.nm).loc[chosen].to_numpy()
    original_texts, original_images = data.products["text"].tolist()[: len(chosen)], pairs.images(rows)
    texts, images = make_relistings(original_texts, original_images)
    encoders, _ = checked_encoders(layout.onnx_dir, settings)  # the variant the embeddings were made with
    relisted = encoders.encode(texts, images)
    relisted["base_fused"] = fuse(
        encode_products(base.clip, base.tokenizer, texts, images), BASE_FUSION_WEIGHTS
    )
    count = len(chosen)
    combined = {k: np.concatenate([vectors[k][:count], relisted[k]]) for k in vectors}
    combined |= reference_vectors([*original_texts, *texts], np.concatenate([original_images, images]))
    groups = np.concatenate([np.arange(count), np.arange(count)])
    nm = np.concatenate([chosen, -chosen])  # re-listings get negative ids: they exist only in this metric
    return combined, nm, groups


@dg.asset_check(
    asset=metric_duplicates,
    blocking=True,
    description="Fused pair F1 above its floor and not worse than the base model.",
)
def duplicates_gate(settings: PipelineSettings, gates: MetricGates) -> dg.AssetCheckResult:
    return gate_result("duplicates", settings, gates)


@dg.asset(
    group_name=EVALUATION_GROUP,
    automation_condition=dg.AutomationCondition.eager(),
    deps=[similarity_index, metric_duplicates],
    kinds={"parquet"},
    description="Candidate duplicate pairs over the whole catalogue (nm_a, nm_b, score, titles) at or above the "
    "threshold chosen by metric_duplicates, for review.",
)
def duplicate_pairs(
    context: dg.AssetExecutionContext, settings: PipelineSettings, index_settings: IndexSettings
) -> dg.MaterializeResult:
    layout = settings.layout
    summary = json.loads(layout.metric_summary("duplicates").read_text())
    if summary["status"] != "ok":
        return dg.MaterializeResult(metadata={"status": summary["status"], "reason": summary["reason"]})
    index = SimilarityIndex.load(pin(layout.index_dir) / "fused.faiss")
    lookup, vectors = catalogue_lookup(settings, context.instance)
    scores, ids = index.search(vectors, index_settings.review_k + 1)
    query = np.repeat(lookup["nm"].to_numpy(), ids.shape[1])
    pairs = pd.DataFrame({"nm_a": query, "nm_b": ids.reshape(-1), "score": scores.reshape(-1)})
    pairs = pairs[
        (pairs["nm_b"] >= 0) & (pairs["nm_a"] != pairs["nm_b"]) & (pairs["score"] >= summary["threshold"])
    ]
    pairs[["nm_a", "nm_b"]] = np.sort(pairs[["nm_a", "nm_b"]].to_numpy(), axis=1)
    pairs = pairs.drop_duplicates(["nm_a", "nm_b"]).sort_values("score", ascending=False, ignore_index=True)
    titles = lookup.set_index("nm")["title"]
    pairs["title_a"] = titles.reindex(pairs["nm_a"]).to_numpy()
    pairs["title_b"] = titles.reindex(pairs["nm_b"]).to_numpy()
    target = write_parquet(pairs, layout.duplicate_pairs)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "pairs": len(pairs),
            "threshold": summary["threshold"],
            "preview": dg.MetadataValue.md(markdown_table(pairs.head(15).to_dict("records"), 3)),
        }
    )
