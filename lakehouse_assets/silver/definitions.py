"""The silver layer's definitions: one multi-asset per dataset and its contract checks."""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.silver.assets import build_silver_asset
from lakehouse_assets.silver.checks import contract_checks_for_asset
from resources.settings import LakehouseSettings


def build_silver_checks(
    settings: LakehouseSettings, dataset: str, asset: dg.AssetsDefinition
) -> list[dg.AssetChecksDefinition]:
    """The contract checks of every table of ``dataset``'s silver ``asset``."""
    contract = load_contract(settings.contract_path(dataset))
    return [c for t in contract.tables for c in contract_checks_for_asset(contract, t, asset)]


def silver_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """The silver multi-asset of every configured dataset, with its contract checks."""
    assets, checks = [], []
    for name in settings.datasets:
        asset = build_silver_asset(settings, name)
        assets.append(asset)
        checks.extend(build_silver_checks(settings, name, asset))
    return dg.Definitions(assets=assets, asset_checks=checks)
