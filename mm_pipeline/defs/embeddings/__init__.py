"""Embeddings (group ``embeddings``, job ``embeddings_job``, partitioned by catalogue batch, pool
``heavy_compute``): ``embeddings`` (``Layout.embeddings``), written by :mod:`mm_pipeline.inference.batches`
with the encoders of the current export (:mod:`mm_pipeline.defs.serving`), and its blocking per-batch check
``batch_vectors`` (:func:`mm_pipeline.publish.catalogue.check_embedded_batch`)."""
