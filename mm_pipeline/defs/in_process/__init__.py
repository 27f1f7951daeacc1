"""The in-process driver, no definitions: ``runner`` materializes the whole graph stage by stage against a
persistent instance (``make demo``, ``mm-pipeline run``, tests), after ``orphans`` marked failed the runs of
killed earlier processes and freed their ``heavy_compute`` slots. Writes no files of its own."""
