"""Maintenance of every Iceberg table the lakehouse writes: one asset per silver,
quarantine and gold table, its health check and its staggered schedule, all from
``maintenance`` in the configuration (no per-table code)."""
