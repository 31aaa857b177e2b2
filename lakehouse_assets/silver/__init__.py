"""Silver: clean, typed, deduplicated Iceberg tables built from bronze by PySpark.

One multi-asset per dataset (:mod:`lakehouse_assets.silver.assets`) writes the
tables of the dataset's contract and its quarantine table; checks generated from
the contract guard them.
"""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.silver.assets import build_silver_asset
from resources.settings import LakehouseSettings


def silver_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """The silver multi-asset of every configured dataset."""
    return dg.Definitions(assets=[build_silver_asset(settings, name) for name in settings.datasets])
