"""dbt run in-process (dbtRunner) behaves like the dbt executable for dagster-dbt.

No Spark: ``dbt parse`` and ``dbt ls`` never open a connection. The gold integration
tests run ``dbt build`` in-process on the test session's Spark.
"""

from __future__ import annotations

import os
from datetime import date

import pytest

from resources.dbt.project import (
    WINDOW_END_VARIABLE,
    WINDOW_START_VARIABLE,
    dbt_project,
    dbt_resource,
    environment,
    vars_argument,
    window_environment,
)
from resources.settings import LakehouseSettings, load_settings


@pytest.fixture(scope="module")
def settings() -> LakehouseSettings:
    return load_settings("local")


def test_in_process_events_are_dbts_json_log_lines(settings: LakehouseSettings) -> None:
    dbt = dbt_resource(settings)
    assert dbt.in_process
    invocation = dbt.cli(["ls", "--resource-type", "model", "--output", "name"])
    events = list(invocation.stream_raw_events())
    assert invocation.is_successful()
    assert invocation.process.returncode == 0
    names = {e.raw_event["info"]["name"] for e in events}
    assert "PrintEvent" in names  # dbt ls prints its listing as PrintEvent
    listed = {
        e.raw_event["info"]["msg"] for e in events if e.raw_event["info"]["name"] == "PrintEvent"
    }
    assert {"fct_orders", "fct_daily_sales", "dim_customers"} <= listed
    # Debug events stay in the invocation's dbt.log, as with the executable's stdout.
    assert all(e.raw_event["info"]["level"] != "debug" for e in events)
    assert (invocation.target_path / "dbt.log").exists()


def test_in_process_usage_errors_fail_with_dbts_message(settings: LakehouseSettings) -> None:
    invocation = dbt_resource(settings).cli(["parse", "--no-such-option"], raise_on_error=False)
    invocation.wait()
    assert not invocation.is_successful()
    assert invocation.process.returncode == 2
    assert "--no-such-option" in str(invocation.get_error())


def test_the_executable_and_in_process_list_the_same_nodes(settings: LakehouseSettings) -> None:
    args = ["ls", "--output", "name"]

    def listed(in_process: bool) -> list[str]:
        invocation = dbt_resource(settings, in_process=in_process).cli(args)
        return sorted(
            e.raw_event["info"]["msg"]
            for e in invocation.stream_raw_events()
            if e.raw_event["info"]["name"] == "PrintEvent"
        )

    assert listed(True) == listed(False) != []


def assert_partial_parse(settings: LakehouseSettings) -> None:
    """A run's invocation of ``settings`` parses only what changed, never everything."""
    invocation = dbt_resource(settings).cli(["ls", *vars_argument(settings)])
    invocation.wait()
    assert invocation.is_successful()
    log = (invocation.target_path / "dbt.log").read_text()
    assert "Partial parsing enabled" in log
    assert "Unable to do partial parsing" not in log


def test_a_runs_window_does_not_make_dbt_parse_the_whole_project(
    settings: LakehouseSettings,
) -> None:
    """Runs pass the definitions' parse vars and their window in the environment, so
    dbt re-parses at most the files that read the window, never the whole project."""
    dbt_project(settings)  # the definitions' parse, with the project's vars
    with environment(window_environment(date(2026, 11, 20), date(2026, 11, 21))):
        assert_partial_parse(settings)


def test_deployments_sharing_the_project_keep_their_own_parse(
    settings: LakehouseSettings,
) -> None:
    """Another namespace means other vars: its parse goes elsewhere, and a run of the
    first deployment after it still partial-parses."""
    other = load_settings(
        "local", environ={**os.environ, "LAKEHOUSE__CATALOG__NAMESPACES__SILVER": "silver_other"}
    )
    first, second = dbt_project(settings), dbt_project(other)
    assert first.manifest_path != second.manifest_path
    assert first.manifest_path.exists()
    assert second.manifest_path.exists()
    assert_partial_parse(settings)


def test_environment_sets_and_unsets_for_the_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WINDOW_START_VARIABLE, "2000-01-01")
    monkeypatch.delenv(WINDOW_END_VARIABLE, raising=False)
    with environment(window_environment(None, date(2026, 11, 21))):
        assert WINDOW_START_VARIABLE not in os.environ
        assert os.environ[WINDOW_END_VARIABLE] == "2026-11-21"
    assert os.environ[WINDOW_START_VARIABLE] == "2000-01-01"
    assert WINDOW_END_VARIABLE not in os.environ
