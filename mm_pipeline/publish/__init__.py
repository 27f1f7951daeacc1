"""Publishing, without Dagster: batch vector validation, gate verdicts and the versioned publish record.

The Dagster layer (``mm_pipeline.defs``) only wires these to the instance and the asset graph.
"""
