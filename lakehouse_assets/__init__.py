"""The lakehouse's Dagster definitions, by layer: bronze, silver, gold.

Convention of every package here and in :mod:`resources`: ``__init__.py`` holds only
the package's docstring and imports nothing (Spark's Python workers import
:mod:`lakehouse_assets.silver.validation` through its package, and must not pay for
Dagster); each layer's ``definitions.py`` builds its ``Definitions`` from the settings,
and :mod:`lakehouse_assets.definitions` merges them. Imports point one way: gold ->
silver -> bronze -> the shared rules (:mod:`lakehouse_assets.partitions`,
:mod:`lakehouse_assets.contracts`, :mod:`lakehouse_assets.groups`), checked by
``lint-imports`` (``pyproject.toml``).
"""
