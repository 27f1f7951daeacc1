"""Evaluation (group ``evaluation``, in ``evaluation_job``): ``base_model_embeddings``
(``Layout.base_embeddings_dir``, :mod:`mm_pipeline.evaluation.eval_set`), one ``metric_<task>`` per label task
with its blocking ``<task>_gate`` (``Layout.metric_dir``, :mod:`mm_pipeline.evaluation.tasks`) in ``assets``;
``similarity_index`` with its blocking ``one_row_per_nm`` (``Layout.index_dir``,
:mod:`mm_pipeline.evaluation.catalogue_index`), ``metric_duplicates`` with ``duplicates_gate`` and
``duplicate_pairs`` (``Layout.duplicate_pairs``, :mod:`mm_pipeline.evaluation.duplicate_pairs`) in
``duplicates``. The resources ``MetricGates`` and ``IndexSettings`` are defined here."""
