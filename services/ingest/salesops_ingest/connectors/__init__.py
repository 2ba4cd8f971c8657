"""Connectors: one module per source, turning stored deliveries into records."""
