"""The serving layer's definitions: one export asset (and its check) per exported model
and store."""

from __future__ import annotations

from typing import Any

import dagster as dg

from lakehouse_assets.serving.assets import (
    build_dynamodb_export,
    build_postgres_export,
    build_postgres_quality_export,
)
from resources.settings import LakehouseSettings


def serving_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """The exports of every enabled store (``serving.dynamodb``, ``serving.postgres``);
    nothing for a store that is disabled or exports no model."""
    built: list[Any] = []
    dynamodb = settings.serving.dynamodb
    if dynamodb.enabled:
        for model, export in dynamodb.exports.items():
            built += build_dynamodb_export(settings, model, export)
    postgres = settings.serving.postgres
    if postgres.enabled:
        for model, pg_export in postgres.exports.items():
            built += build_postgres_export(settings, model, pg_export)
        built.append(build_postgres_quality_export(settings))
    checks = [d for d in built if isinstance(d, dg.AssetChecksDefinition)]
    assets = [d for d in built if d not in checks]
    return dg.Definitions(assets=assets, asset_checks=checks)
