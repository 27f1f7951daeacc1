"""Linear and MLP probes over embeddings, scored with stratified cross-validation, and the references they are
read against.

What lives where: :mod:`~mm_pipeline.evaluation.probes.protocol` is the scoring protocol every probe follows
and says it in full (which labels and classes count, the stratified folds and seeds, F1 and its bootstrap
noise), with :class:`ProbeRun`, the out-of-fold predictions of one task, which builds the result table
(``RESULT_COLUMNS``); :mod:`~mm_pipeline.evaluation.probes.solvers` holds the numerical solvers (logistic
regression by preconditioned L-BFGS, the one-hidden-layer MLP) and the torch helpers they share (thread
control, :func:`center_and_scale`, :func:`fit_pca`); :mod:`~mm_pipeline.evaluation.probes.cross_validation`
runs them on the embeddings fold by fold (:func:`cross_validate`, whose ``table()`` is the scores) and regresses
log-price (:func:`regress_log_price`); :mod:`~mm_pipeline.evaluation.probes.baselines` scores the references
that learn nothing, TF-IDF of the text and pixels, on the same folds (:func:`reference_probes`, the TF-IDF
helpers, ``REFERENCE_FEATURES``). Modules depend in that order, none on a later one. The names below are
those other code imports from here.
"""

from mm_pipeline.evaluation.probes.baselines import (
    PIXEL_FEATURES,
    REFERENCE_FEATURES,
    REFERENCE_ROWS,
    TFIDF_FEATURES,
    fit_tfidf,
    reference_probes,
    tfidf_counts,
    tfidf_matrix,
    tfidf_of_counts,
)
from mm_pipeline.evaluation.probes.cross_validation import (
    PCA_FUSED,
    PROBES,
    cross_validate,
    regress_log_price,
)
from mm_pipeline.evaluation.probes.protocol import (
    MIN_ROWS,
    OTHER_CLASS,
    RESULT_COLUMNS,
    InsufficientData,
    PreparedLabels,
    ProbeRun,
    as_matrix,
    bootstrap_f1,
    fold_generator,
    prepare_labels,
    score_predictions,
    stratified_folds,
)
from mm_pipeline.evaluation.probes.solvers import (
    FitQueue,
    LogRegSettings,
    MLPSettings,
    center_and_scale,
    fit_pca,
    fit_predict_logreg,
    fit_predict_mlp,
    torch_threads,
)

__all__ = [
    "FitQueue",
    "MIN_ROWS",
    "OTHER_CLASS",
    "PCA_FUSED",
    "PIXEL_FEATURES",
    "PROBES",
    "REFERENCE_FEATURES",
    "REFERENCE_ROWS",
    "RESULT_COLUMNS",
    "TFIDF_FEATURES",
    "InsufficientData",
    "LogRegSettings",
    "MLPSettings",
    "PreparedLabels",
    "ProbeRun",
    "as_matrix",
    "bootstrap_f1",
    "center_and_scale",
    "cross_validate",
    "fit_pca",
    "fit_predict_logreg",
    "fit_predict_mlp",
    "fit_tfidf",
    "fold_generator",
    "prepare_labels",
    "reference_probes",
    "regress_log_price",
    "score_predictions",
    "stratified_folds",
    "tfidf_counts",
    "tfidf_matrix",
    "tfidf_of_counts",
    "torch_threads",
]
