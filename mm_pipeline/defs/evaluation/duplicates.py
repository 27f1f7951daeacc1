"""Duplicates: faiss similarity index over fused vectors, the duplicates metric with its gate, review pairs."""

import dagster as dg

from mm_pipeline.defs.evaluation.assets import base_model_embeddings, eval_set, evaluation_asset, metric_gate
from mm_pipeline.defs.resources import PipelineSettings, materialized_batches
from mm_pipeline.defs.serving import catalogue_lookup, checked_encoders, one_row_per_nm_check
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.evaluation.catalogue_index import example_neighbours, read_index_lookup, write_index
from mm_pipeline.evaluation.duplicate_pairs import TASK, duplicates_metric, write_review_pairs
from mm_pipeline.evaluation.summary import read_summary


class IndexSettings(dg.ConfigurableResource):
    """Exact search up to ``exact_max`` products, an approximate index above (parameters documented in README)."""

    exact_max: int = 200_000
    kind: str = "ivf"
    hnsw_m: int = 32
    ef_search: int = 128
    ivf_nprobe: int = 16
    review_k: int = 10


@evaluation_asset(
    kinds={"faiss"},
    deps=["embeddings"],
    description="faiss inner-product index over the fused vectors of all served products (every registered "
    "batch, all embedded by the current model: it refuses naming stale batches), ids = nm, one row per nm.",
)
def similarity_index(
    context: dg.AssetExecutionContext, settings: PipelineSettings, index_settings: IndexSettings
) -> dg.MaterializeResult:
    lookup, vectors = catalogue_lookup(settings, context.instance)
    built = write_index(
        settings.layout,
        lookup,
        vectors,
        exact_max=index_settings.exact_max,
        kind=index_settings.kind,
        hnsw_m=index_settings.hnsw_m,
        ef_search=index_settings.ef_search,
        ivf_nprobe=index_settings.ivf_nprobe,
        threads=settings.workers,
    )
    index = built.index
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(settings.layout.index_file)),
            "index_type": index.kind,
            "size": index.n,
            "dim": index.dim,
            "build_seconds": round(index.build_seconds, 3),
            "recall_at_10_vs_exact": built.recall_at_10,
            "params": dg.MetadataValue.json(index.params),
            "example_neighbours": dg.MetadataValue.md(
                markdown_table(example_neighbours(index, lookup, vectors), 3)
            ),
        }
    )


index_one_row_per_nm = one_row_per_nm_check(
    similarity_index,
    read_index_lookup,
    "The index holds exactly one vector per nm (a repeated product names its batches).",
)


@evaluation_asset(
    deps=["embeddings", base_model_embeddings],
    kinds={"faiss"},
    description="Identical products with different images/descriptions: recall@1/5/10 of finding a same-group "
    "listing, and pair precision/recall/F1 at a threshold chosen on one half of the groups and scored on the "
    "other; image, text, fused and the base model compared with references that learn nothing (TF-IDF of the "
    "text, PCA of 24×24 pixels, both concatenated).",
)
def metric_duplicates(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    metric = duplicates_metric(
        settings.layout,
        eval_set(settings, context.instance),
        materialized_batches(settings, context.instance),
        lambda: checked_encoders(settings)[0],  # the variant the embeddings were made with
    )
    if metric.relisted:
        context.log.info(
            f"no dup_group ground truth; built {metric.summary.groups} synthetic re-listing pairs"
        )
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in metric.summary.as_dict().items() if k != "task"},
            "results": dg.MetadataValue.md(markdown_table(metric.table.to_dict("records"), 3)),
        }
    )


duplicates_gate = metric_gate(
    metric_duplicates, TASK, "Fused pair F1 above its floor and not worse than the base model."
)


@evaluation_asset(
    deps=[similarity_index, metric_duplicates],
    kinds={"parquet"},
    description="Candidate duplicate pairs over the whole catalogue (nm_a, nm_b, score, titles) at or above the "
    "threshold chosen by metric_duplicates, for review.",
)
def duplicate_pairs(
    context: dg.AssetExecutionContext, settings: PipelineSettings, index_settings: IndexSettings
) -> dg.MaterializeResult:
    layout = settings.layout
    summary = read_summary(layout, TASK)
    if not summary.ok:
        return dg.MaterializeResult(metadata={"status": summary.status, "reason": summary.reason or ""})
    lookup, vectors = catalogue_lookup(settings, context.instance)
    pairs = write_review_pairs(layout, lookup, vectors, index_settings.review_k, summary.threshold)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(layout.duplicate_pairs)),
            "pairs": len(pairs),
            "threshold": summary.threshold,
            "preview": dg.MetadataValue.md(markdown_table(pairs.head(15).to_dict("records"), 3)),
        }
    )
