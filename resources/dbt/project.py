"""dbt (dbt-core + dbt-spark in ``session`` mode) on the lakehouse's Spark and Iceberg catalog.

dbt-spark's session method creates its own SparkSession from the profile's
``server_side_parameters``, so the profile must carry the same Spark settings as
:class:`resources.spark.resource.SparkResource`. Rather than keep a second copy by hand, the
profile is generated from the project settings into the data directory. It holds no
credential, not even as an ``env_var(...)`` reference (see :func:`profiles_yaml`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from resources.locks import file_lock
from resources.settings import LakehouseSettings, cache_dir
from resources.spark.conf import build_spark_conf

if TYPE_CHECKING:
    from dagster_dbt import DbtProject

    from resources.dbt.in_process import InProcessDbtResource

PROFILE_NAME = "lakehouse"
_LOCAL_S3_PLACEHOLDER = "lakehouse-local"


def profiles_yaml(settings: LakehouseSettings) -> str:
    """The dbt ``profiles.yml`` text for every target of ``settings``' environment.

    No S3 credential goes into ``server_side_parameters``: dbt renders ``env_var()``
    references there, and the ``dbt`` executable (``in_process=False``) starts its own
    Spark session with ``SparkSession.builder.config(...)``, which puts every entry on
    spark-submit's command line. In-process dbt runs on the run's session, which has
    them (:class:`resources.spark.resource.SparkResource`); the executable's JVM finds them the
    way S3A and Iceberg's S3FileIO do without static keys, through the AWS default
    chains (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance
    role). Only the local S3 server's placeholder, no secret, is written, when the
    variables are unset, as :func:`resources.environments.s3_resource` does.
    """
    access_key = secret_key = None
    unset = not (
        os.environ.get(settings.s3.access_key_id_env)
        and os.environ.get(settings.s3.secret_access_key_env)
    )
    if settings.s3_is_local and unset:
        access_key = secret_key = _LOCAL_S3_PLACEHOLDER
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
        extra={
            # dbt-spark asks for Hive support; every table lives in the Iceberg catalog,
            # and a Hive session catalog would boot an embedded Derby metastore in the
            # working directory that two dbt processes cannot open at once.
            "spark.sql.catalogImplementation": "in-memory",
            "spark.sql.warehouse.dir": str(settings.data_dir / "spark-warehouse"),
            **settings.spark.conf,
        },
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
    """Write the generated profile under ``<data_dir>/dbt_profiles/<hash>/`` and return
    that directory.

    Keyed by content, so settings that differ (another gold namespace, another
    endpoint) never rewrite a profile that a running dbt invocation reads.
    """
    text = profiles_yaml(settings)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    directory = settings.data_dir / "dbt_profiles" / digest
    path = directory / "profiles.yml"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        staged = directory / f"profiles.yml.{os.getpid()}"
        staged.write_text(text)
        staged.replace(path)
    return directory


def dbt_resource(settings: LakehouseSettings, *, in_process: bool = True) -> InProcessDbtResource:
    """The dbt resource of an environment, with its generated profile.

    ``in_process``: run dbt inside the run's process, on the run's Spark session
    (see :mod:`resources.dbt.in_process`); otherwise the ``dbt`` executable.
    """
    # dagster_dbt takes seconds to import; only code that binds dbt pays for it.
    from resources.dbt.in_process import InProcessDbtResource

    # The dbt beside this interpreter (the project's venv), even when PATH lacks it.
    beside = Path(sys.executable).parent / "dbt"
    executable = str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")
    return InProcessDbtResource(
        in_process=in_process,
        dbt_executable=executable,
        project_dir=str(settings.dbt_project_dir),
        profiles_dir=str(write_profiles(settings)),
        profile=PROFILE_NAME,
        target=settings.dbt.target,
        parse_target_path=str(parse_target_path(settings)),
    )


#: The environment variables that carry a run's partition window ``[start, end)`` to
#: dbt (``dbt/macros/lookback.sql``). Unset, the window is everything.
WINDOW_START_VARIABLE = "LAKEHOUSE_DBT_START_DATE"
WINDOW_END_VARIABLE = "LAKEHOUSE_DBT_END_DATE"


def gold_late_window_days(settings: LakehouseSettings) -> int:
    """The widest late window of the datasets: how far back a gold run reprocesses."""
    return max((settings.late_window_days(name) for name in settings.datasets), default=0)


def project_vars(settings: LakehouseSettings) -> dict[str, Any]:
    """The vars of every dbt invocation (names in ``dbt/dbt_project.yml``).

    They hold for the deployment, not for a run: dbt re-parses the whole project
    when its vars differ from the last parse's, so the definitions' ``dbt parse``
    and every run pass these same ones and runs parse only what changed (about 1
    s instead of 5). The run's window travels as environment variables
    (:func:`window_environment`), which dbt re-reads at compile time.
    """
    return {
        "late_window_days": gold_late_window_days(settings),
        "silver_namespace": settings.namespace("silver"),
        "reporting_currency": settings.dbt.reporting_currency,
    }


def vars_argument(settings: LakehouseSettings) -> list[str]:
    return ["--vars", json.dumps(project_vars(settings), sort_keys=True)]


def window_environment(start: date | None, end: date | None) -> dict[str, str | None]:
    """The window variables of a run's ``[start, end)``; ``None`` unsets them (everything)."""
    return {
        WINDOW_START_VARIABLE: start.isoformat() if start else None,
        WINDOW_END_VARIABLE: end.isoformat() if end else None,
    }


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``values`` set (``None``: unset) for the block, then as before.

    dbt reads the window from the environment: in-process on its thread, as the
    ``dbt`` executable from the environment it inherits. A run's steps run one at a
    time in its process, so no other step sees the change.
    """
    before = {name: os.environ.get(name) for name in values}

    def apply(target: Mapping[str, str | None]) -> None:
        for name, value in target.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    apply(values)
    try:
        yield
    finally:
        apply(before)


#: What `dbt parse` reads: a change to any of these makes the manifest stale.
_PROJECT_SOURCES = ("dbt_project.yml", "models", "macros", "seeds", "snapshots", "tests")


def _newest_source_mtime(project_dir: Path) -> float:
    """The newest change under the project's sources: a file written, or (the mtime of
    its directory) a file added, renamed or deleted."""
    newest = 0.0
    for name in _PROJECT_SOURCES:
        path = project_dir / name
        paths = [path, *path.rglob("*")] if path.is_dir() else [path] if path.is_file() else []
        for item in paths:
            newest = max(newest, item.stat().st_mtime)
    return newest


def parse_target_path(settings: LakehouseSettings) -> Path:
    """Where the definitions' ``dbt parse`` for these settings goes, relative to the project.

    dbt parses the whole project again when the vars or the profile differ from
    those of the ``partial_parse.msgpack`` it starts from, and every run starts from
    the definitions' one. Environments that share a working copy (the demo, the
    tests, a benchmark's lakehouses, each with its own namespaces and endpoints)
    would overwrite each other's and every run would parse it all (5-10 s). So each
    set of vars, profile and target parses into a directory of its own.
    """
    material = json.dumps(
        {
            "vars": project_vars(settings),
            "profiles": profiles_yaml(settings),
            "target": settings.dbt.target,
        },
        sort_keys=True,
    )
    return Path("target") / f"parse-{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def dbt_project(settings: LakehouseSettings) -> DbtProject:
    """The dbt project of ``settings``, its manifest parsed when missing or stale.

    Deployments build the manifest into the image (``dagster-dbt project
    prepare-and-package``), so this parses nothing there; a working copy
    re-parses (``dbt parse``, a few seconds) whenever a model, macro, seed,
    snapshot or test changed since the last parse. A file lock keeps the
    processes that load the definitions at once (daemon, UI, runs) from
    parsing over each other.

    Not dagster-dbt's ``DbtProject.prepare_if_dev()``: it parses only under
    ``dg``/``dagster dev`` (``DAGSTER_IS_DEV_CLI``), and then on every load of the
    definitions, while the daemon, the runs, the demo and the tests load them
    outside it; and ``DbtProject`` (dagster-dbt 0.29) takes no preparer of our own.
    """
    from dagster_dbt import DbtProject

    project = DbtProject(
        project_dir=settings.dbt_project_dir,
        profiles_dir=write_profiles(settings),
        profile=PROFILE_NAME,
        target=settings.dbt.target,
        target_path=parse_target_path(settings),
    )
    manifest = project.manifest_path

    def stale() -> bool:
        newest = _newest_source_mtime(project.project_dir)
        return not manifest.exists() or manifest.stat().st_mtime < newest

    if stale():
        with file_lock(manifest.parent / "parse.lock"):
            if stale():
                # The process loading the definitions has no Spark session to share.
                dbt = dbt_resource(settings, in_process=False)
                dbt.cli(
                    ["parse", "--quiet", *vars_argument(settings)], target_path=project.target_path
                ).wait()
    return project
