"""The Dagster layer: it wires the core to the asset graph and holds no domain logic of its own.

One area per stage, named after its asset group: ``ingest`` (core: ``catalog`` + ``prep``), ``model``
(``model``), ``embeddings`` (``inference``), ``evaluation`` (``evaluation``) and ``publish`` (``publish``);
``automation`` holds the jobs, sensors, the schedule and the gating of automation, ``in_process`` the driver
that runs the whole graph in one process (``make demo``, ``mm-pipeline run``, tests). Beside them, shared by
every area: ``resources`` (settings, W&B, the compute pool), ``partitions`` (one per catalogue batch),
``serving`` (the current ONNX export and the served catalogue) and ``tables`` (markdown for metadata). An asset
body reads its inputs, calls the core and returns metadata built from the core's result; every file name
comes from :class:`mm_pipeline.layout.Layout`.
"""
