"""dbt (dbt-core + dbt-spark in ``session`` mode) on the lakehouse's Spark and Iceberg catalog.

dbt-spark's session method creates its own SparkSession from the profile's
``server_side_parameters``, so the profile must carry the same Spark settings as
:class:`resources.spark.SparkResource`. Rather than keep a second copy by hand, the
profile is generated from the project settings into the data directory; secrets
appear in it only as ``env_var(...)`` references that dbt resolves at run time.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from resources.settings import LakehouseSettings, cache_dir
from resources.spark_conf import build_spark_conf

if TYPE_CHECKING:
    from dagster_dbt import DbtCliResource

PROFILE_NAME = "lakehouse"
_LOCAL_S3_PLACEHOLDER = "lakehouse-local"


def _credential(variable: str, local: bool) -> str | None:
    if os.environ.get(variable):
        return "{{ env_var('" + variable + "') }}"
    return _LOCAL_S3_PLACEHOLDER if local else None


def profiles_yaml(settings: LakehouseSettings) -> str:
    """The dbt ``profiles.yml`` text for every target of ``settings``' environment."""
    access_key = _credential(settings.s3.access_key_id_env, settings.s3_is_local)
    secret_key = _credential(settings.s3.secret_access_key_env, settings.s3_is_local)
    if access_key is None or secret_key is None:
        access_key = secret_key = None
    conf = build_spark_conf(
        catalog_name=settings.catalog.name,
        catalog_uri=settings.catalog_uri,
        warehouse=settings.warehouse,
        s3_endpoint=settings.s3.endpoint_url,
        s3_region=settings.s3.region,
        access_key_id=access_key,
        secret_access_key=secret_key,
        master=settings.spark.master,
        driver_memory=settings.spark.driver_memory,
        shuffle_partitions=settings.spark.shuffle_partitions,
        ivy_dir=str(cache_dir() / "ivy"),
        app_name="lakehouse-dbt",
        extra=dict(settings.spark.conf),
    )
    profile = {
        PROFILE_NAME: {
            "target": settings.dbt.target,
            "outputs": {
                settings.dbt.target: {
                    "type": "spark",
                    "method": "session",
                    "host": "NA",
                    "schema": settings.namespace("gold"),
                    "server_side_parameters": conf,
                }
            },
        }
    }
    return yaml.safe_dump(profile, sort_keys=False)


def write_profiles(settings: LakehouseSettings) -> Path:
    """Write the generated profile to ``<data_dir>/dbt_profiles`` and return that directory."""
    directory = settings.data_dir / "dbt_profiles"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "profiles.yml"
    text = profiles_yaml(settings)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return directory


def dbt_resource(settings: LakehouseSettings) -> DbtCliResource:
    """The dbt CLI resource of an environment, with its generated profile."""
    # dagster_dbt takes seconds to import; only code that binds dbt pays for it.
    from dagster_dbt import DbtCliResource

    # The dbt beside this interpreter (the project's venv), even when PATH lacks it.
    beside = Path(sys.executable).parent / "dbt"
    executable = str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")
    return DbtCliResource(
        dbt_executable=executable,
        project_dir=str(settings.dbt_project_dir),
        profiles_dir=str(write_profiles(settings)),
        profile=PROFILE_NAME,
        target=settings.dbt.target,
    )
