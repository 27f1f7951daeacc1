"""Ingest (group ``ingest``, job ``ingest_job``, partitioned by catalogue batch): ``raw_products`` (accepted and
rejected rows, ``Layout.raw_dir``), ``cleaned_text`` (``Layout.cleaned_text``) and ``image_tensors``
(``Layout.image_tensors``), each a call into :mod:`mm_pipeline.prep.ingest`, which validates with
:mod:`mm_pipeline.catalog.contract` and cleans and decodes with :mod:`mm_pipeline.prep`. No checks."""
