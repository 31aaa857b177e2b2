"""Silver: clean, typed, deduplicated Iceberg tables and the asset checks of their contracts."""
