"""The Definitions load for every dataset, with the resources the assets ask for."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from lakehouse_assets.definitions import defs, settings
from resources.dbt.project import dbt_resource
from resources.environments import s3_resource
from resources.settings import PROJECT_ROOT, load_settings


def test_definitions_load_and_resolve() -> None:
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert {f"bronze/{name}" for name in settings.datasets} <= keys
    dg.Definitions.validate_loadable(defs)


def test_every_kafka_dataset_gets_a_sensor_a_job_and_a_compaction_schedule() -> None:
    repository = defs.get_repository_def()
    for name, spec in settings.datasets.items():
        if spec.kind != "kafka":
            continue
        assert repository.has_sensor_def(f"{name}_kafka_arrivals")
        assert repository.has_job(f"land_{name}")
        assert repository.has_schedule_def(f"compact_{name}_bronze")


def test_every_http_dataset_gets_a_source_a_job_and_a_fetch_schedule_but_no_sensor() -> None:
    repository = defs.get_repository_def()
    http = [name for name, spec in settings.datasets.items() if spec.kind == "http"]
    assert http, "the configuration ships an HTTP dataset (weather)"
    keys = repository.asset_graph.get_all_asset_keys()
    for name in http:
        assert dg.AssetKey(["http", name]) in keys
        assert repository.has_job(f"land_{name}")
        assert repository.has_schedule_def(f"fetch_{name}")
        assert not repository.has_sensor_def(f"{name}_kafka_arrivals")


def test_a_refresh_rebuilds_the_pipeline_layers_only() -> None:
    """Table maintenance and serving exports are downstream of silver and gold but run on
    their own schedules and automation, never in every refresh of today's records."""
    repository = defs.get_repository_def()
    for name, spec in settings.datasets.items():
        if spec.kind != "kafka":
            continue
        job = repository.get_job(f"refresh_{name}")
        keys = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
        assert f"bronze/{name}" in keys
        assert any(key.startswith("silver/") for key in keys)
        assert {key.split("/")[0] for key in keys} <= {"bronze", "silver", "gold"}, keys


def test_secrets_are_bound_as_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    s3 = s3_resource(load_settings("prod", environ={"LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "b:1"}))
    # The UI and run logs show the variable's name; the value is resolved at run time.
    assert isinstance(s3.secret_access_key, dg.EnvVar)
    assert s3.secret_access_key.env_var_name == "AWS_SECRET_ACCESS_KEY"
    assert "very-secret" not in repr(s3)


def test_dg_check_defs_loads_the_code_location(tmp_path: Path) -> None:
    """`dg check defs` (which supersedes `dagster definitions validate`) finds the project
    through pyproject.toml's [tool.dg] and loads its code location."""
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs", "--log-level", "info"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Validation successful for code location lakehouse" in output, output
    assert "All definitions loaded successfully" in output, output
    assert "SupersessionWarning" not in output, output


def test_workspace_and_dg_project_name_the_same_code_location() -> None:
    """`dg dev -w workspace.yaml` (`make dev`) serves what `dg check defs` checks."""
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["tool"]["dg"]["project"]
    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"] == [
        {
            "python_module": {
                "module_name": project["code_location_target_module"],
                "attribute": "defs",
                "location_name": project["code_location_name"],
            }
        }
    ]


def test_dbt_parses_the_project_with_the_generated_profile() -> None:
    dbt = dbt_resource(settings)
    invocation = dbt.cli(["parse"], raise_on_error=False)
    invocation.wait()
    assert invocation.is_successful(), str(invocation.get_error())
    profile = (Path(dbt.profiles_dir or "") / "profiles.yml").read_text()
    assert "method: session" in profile
    assert f"spark.sql.defaultCatalog: {settings.catalog.name}" in profile
