"""Publishing, without Dagster: the served catalogue (which batches, their vectors, one row per nm;
``catalogue``), batch vector validation (``vectors``), gate verdicts (``gates``) and the versioned publish
record (``record``).

The Dagster layer (``mm_pipeline.defs``) only wires these to the instance and the asset graph.
"""
