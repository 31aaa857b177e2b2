"""Gold: dbt models on the silver tables (facts, daily sales, customer history).

The dbt project in ``dbt/`` is the source of truth; :mod:`lakehouse_assets.gold.assets`
turns its models, snapshots and seeds into Dagster assets and its tests into
asset checks.
"""
