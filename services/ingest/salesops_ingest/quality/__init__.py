"""Data-quality measurements of ingest: how well normalization and matching do."""
