"""Silver: clean, typed, deduplicated Iceberg tables built from bronze by PySpark.

One multi-asset per dataset (:mod:`lakehouse_assets.silver.assets`) writes the
tables of the dataset's contract and its quarantine table; the asset checks
generated from the same contract (:mod:`lakehouse_assets.silver.checks`) guard
every table, and those of severity ``error`` block what is downstream.

This package imports nothing itself: Spark's Python workers import
:mod:`lakehouse_assets.silver.validation` (the contract evaluator of the pandas UDF)
through it, and each cold worker would otherwise import Dagster and every silver
module first. The definitions are in :mod:`lakehouse_assets.silver.definitions`.
"""
