"""Automation, no assets: the jobs per stage, the ``new_batch_files`` sensor (registers, re-ingests and retires
batches), the ``nightly_refresh`` schedule and the automation-condition sensor (``jobs``); the
``stale_embeddings`` sensor (``stale``); and the gates on every path (``gating``): automation waits for the
blocking checks of every dependency, and ``published_embeddings`` reads them itself. Writes no files."""
