"""Catalogue batches: one dynamic partition per parquet file in the incoming folder."""

import dagster as dg

catalogue_batches = dg.DynamicPartitionsDefinition(name="catalogue_batches")
