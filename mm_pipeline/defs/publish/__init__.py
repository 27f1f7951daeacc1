"""Publish (group ``publish``, in ``evaluation_job``): ``published_embeddings`` (``Layout.published_embeddings``,
``published_manifest`` and ``published_versions_dir``, written by :mod:`mm_pipeline.publish.catalogue`) with
its blocking check ``one_row_per_nm``. It publishes only when the gates it reads from the instance passed
(:mod:`mm_pipeline.defs.automation.gating`, :mod:`mm_pipeline.publish.gates`)."""
