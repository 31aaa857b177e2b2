"""Gold's write-audit-publish plan, from the dbt project's manifest."""

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from lakehouse_assets.gold.publishing import gold_tables, refuse_unaudited_models
from resources.dbt.project import _newest_source_mtime, dbt_project
from resources.settings import ConfigError, LakehouseSettings


def _manifest(settings: LakehouseSettings) -> dict[str, Any]:
    return json.loads(dbt_project(settings).manifest_path.read_text())


def test_gold_tables_come_upstream_first_without_views_seeds_or_ephemeral_models(
    settings: LakehouseSettings,
) -> None:
    tables = gold_tables(_manifest(settings))
    assert set(tables) == {
        "customers_snapshot",
        "dim_customers",
        "fct_orders",
        "fct_order_lines",
        "fct_daily_sales",
        "fct_customer_sales",
        "plain_daily_totals",
        "weather_daily",
    }
    # A reader who sees this run's figures finds the tables they came from published.
    assert tables.index("fct_orders") < tables.index("fct_daily_sales")
    assert tables.index("fct_order_lines") < tables.index("fct_daily_sales")
    assert tables.index("customers_snapshot") < tables.index("dim_customers")
    assert tables.index("fct_orders") < tables.index("fct_customer_sales")


def test_every_model_of_the_project_writes_through_the_audit_branch(
    settings: LakehouseSettings,
) -> None:
    manifest = _manifest(settings)
    refuse_unaudited_models(manifest)  # the shipped project passes
    for node in manifest["nodes"].values():
        if node["resource_type"] in ("model", "snapshot") and node["name"] in gold_tables(manifest):
            properties = node["config"].get("tblproperties") or {}
            assert properties.get("write.wap.enabled") == "true", node["name"]


def test_a_table_model_is_refused_with_its_file_and_the_fix(settings: LakehouseSettings) -> None:
    manifest = _manifest(settings)
    node = next(n for n in manifest["nodes"].values() if n["name"] == "dim_customers")
    node["config"]["materialized"] = "table"
    with pytest.raises(ConfigError) as raised:
        refuse_unaudited_models(manifest)
    message = str(raised.value)
    assert "dim_customers (models/marts/dim_customers.sql: materialized 'table')" in message
    assert "insert_overwrite" in message


def test_deleting_a_project_file_makes_the_manifest_stale(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    singular = tests / "assert_something.sql"
    singular.write_text("select 1 where false\n")
    past = time.time() - 60
    for path in (tests, singular):
        os.utime(path, (past, past))
    before = _newest_source_mtime(tmp_path)
    singular.unlink()
    assert _newest_source_mtime(tmp_path) > before


def test_every_dbt_test_is_an_asset_check_that_says_what_failed(
    settings: LakehouseSettings,
) -> None:
    from lakehouse_assets.gold.assets import build_gold_assets

    manifest = _manifest(settings)
    tests = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    checks = {
        spec.name: spec
        for assets in build_gold_assets(settings, dbt_project(settings))
        for spec in assets.check_specs
    }
    assert set(checks) == tests  # none is logged as a mere observation
    assert all(spec.description for spec in checks.values()), [
        name for name, spec in checks.items() if not spec.description
    ]
    # A singular test that reads fct_order_lines and fct_orders belongs to fct_orders.
    lines = checks["assert_order_lines_add_up_to_subtotal"]
    assert lines.asset_key.path == ["gold", "fct_orders"]


def test_the_gold_country_test_accepts_what_the_contract_accepts(
    settings: LakehouseSettings,
) -> None:
    from lakehouse_assets.contracts.loading import load_contract

    contract = load_contract(settings.contract_path("purchase_orders"))
    (country,) = [
        rule.value
        for rule in contract.row_rules("orders")
        if rule.kind == "pattern" and rule.column == "country"
    ]
    manifest = _manifest(settings)
    (test,) = [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test" and n.get("column_name") == "country"
    ]
    assert test["test_metadata"]["name"] == "matches_pattern"
    assert test["test_metadata"]["kwargs"]["pattern"] == country
