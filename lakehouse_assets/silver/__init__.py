"""Silver: clean, typed, deduplicated Iceberg tables built from bronze by PySpark.

One multi-asset per dataset (:mod:`lakehouse_assets.silver.assets`) writes the
tables of the dataset's contract and its quarantine table to the run's branch; the
asset checks generated from the same contract (:mod:`lakehouse_assets.silver.checks`)
run in its step on that branch, and only when those of severity ``error`` pass does
the run publish ``main`` (:mod:`lakehouse_assets.silver.publishing`).

This package imports nothing itself: Spark's Python workers import
:mod:`lakehouse_assets.silver.validation` (the contract evaluator of the pandas UDF)
through it, and each cold worker would otherwise import Dagster and every silver
module first. The definitions are in :mod:`lakehouse_assets.silver.definitions`.
"""
