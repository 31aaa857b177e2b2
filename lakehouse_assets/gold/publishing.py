"""Write-audit-publish of gold: dbt builds on the run's branch, and gold is published
only when dbt's blocking tests pass.

With ``catalog.write_audit_publish`` (the default) the models step of a gold run:

1. drops the run branches of gold tables older than ``catalog.audit_branch_max_age_days``
   and this run's own branch (a retried step starts again from ``main``);
2. enables Iceberg's write-audit-publish on every gold table the project builds
   (``write.wap.enabled``): tables that dbt creates get it from ``dbt_project.yml``'s
   ``tblproperties``, tables created before that get it here;
3. runs ``dbt build`` with ``spark.wap.branch`` set to the run's branch ``audit_<run id>``
   on the run's Spark session, which in-process dbt shares. Iceberg then sends every
   write to a WAP-enabled table to that branch (a new table's ``CREATE TABLE AS
   SELECT`` too: it exists with the branch only, so ``main`` reads it as empty), and
   every read of a table that has the branch to it: models built later in the run and
   dbt's tests read what this run wrote, readers of ``main`` do not;
4. publishes (:func:`resources.iceberg.publishing.publish_tables`) only when ``dbt build``
   succeeded. A test with severity ``error`` that fails, a model error or a killed run
   leaves ``main`` as it was and the branch for inspection (its name is in the step's
   logs and each output's metadata; ``lakehouse-branches list --gold``). Tests with
   severity ``warn`` do not block, as in dbt.

Iceberg's ``CREATE OR REPLACE TABLE`` (dbt's ``table`` materialization) replaces the
table's ``main``, not the branch: gold models are ``incremental`` (a full rebuild is the
``insert_overwrite`` strategy) or snapshots, and :func:`refuse_unaudited_models` rejects
a ``table`` model when the definitions load. Seeds are reference data loaded from the
project's reviewed CSV files in runs of their own, and are written to ``main``.

Publishing order: the tables in dbt's dependency order, upstream first, so a reader who
sees this run's ``fct_daily_sales`` also finds this run's ``fct_orders`` and
``fct_order_lines``, which it was computed from. Each fast-forward is atomic and takes
milliseconds; during the publish a reader that reads a downstream table before an
upstream one can still pair the previous run's downstream rows with this run's
upstream rows (the same lag as between two consecutive runs), never rows of a build
whose tests failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any

from resources.iceberg.branches import drop_branch
from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.publishing import loaded_tables
from resources.settings import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Iceberg's table property that lets ``spark.wap.branch`` redirect the table's writes.
WAP_ENABLED = "write.wap.enabled"
#: Spark session setting naming the branch that writes (and reads) of WAP tables use.
WAP_BRANCH = "spark.wap.branch"
#: dbt materializations whose writes follow ``spark.wap.branch``.
AUDITED = frozenset({"incremental", "snapshot"})
#: dbt materializations that write no table of their own.
NO_TABLE = frozenset({"ephemeral", "view"})


def _materialization(node: Mapping[str, Any]) -> str:
    if node["resource_type"] == "snapshot":
        return "snapshot"
    return str(node.get("config", {}).get("materialized", ""))


def gold_tables(manifest: Mapping[str, Any]) -> list[str]:
    """The tables the project's models and snapshots build, upstream first (dbt's graph)."""
    nodes = manifest["nodes"]
    graph = {
        unique_id: [p for p in manifest["parent_map"].get(unique_id, ()) if p in nodes]
        for unique_id in nodes
    }
    ordered = TopologicalSorter(graph).static_order()
    tables = []
    for unique_id in ordered:
        node = nodes[unique_id]
        if node["resource_type"] not in ("model", "snapshot"):
            continue
        if _materialization(node) in NO_TABLE:
            continue
        tables.append(str(node.get("alias") or node["name"]))
    return tables


def refuse_unaudited_models(manifest: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming every model whose writes would bypass the branch.

    Iceberg's ``CREATE OR REPLACE TABLE`` (dbt's ``table`` materialization) replaces
    ``main`` whatever ``spark.wap.branch`` says: readers would see the rebuilt table
    before dbt's tests ran on it.
    """
    unaudited = sorted(
        f"{node['name']} ({node.get('original_file_path', '?')}: materialized "
        f"{_materialization(node)!r})"
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "snapshot")
        and _materialization(node) not in AUDITED | NO_TABLE
    )
    if unaudited:
        raise ConfigError(
            "with catalog.write_audit_publish, every gold model that builds a table must be "
            "materialized 'incremental' (a full rebuild: incremental_strategy "
            "'insert_overwrite') or be a snapshot, because Iceberg's CREATE OR REPLACE "
            "replaces main instead of writing the run's branch: " + "; ".join(unaudited)
        )


def enable_wap(iceberg: IcebergCatalogResource, identifiers: list[tuple[str, str]]) -> None:
    """Set ``write.wap.enabled`` on the tables of ``identifiers`` that exist without it."""
    for table in loaded_tables(iceberg, identifiers):
        if table.properties.get(WAP_ENABLED) != "true":
            with table.transaction() as transaction:
                transaction.set_properties({WAP_ENABLED: "true"})


def drop_run_branch(
    iceberg: IcebergCatalogResource, identifiers: list[tuple[str, str]], branch: str
) -> list[str]:
    """Drop ``branch`` where it exists (an earlier attempt of the same step); the tables."""
    return [
        ".".join(t.name()) for t in loaded_tables(iceberg, identifiers) if drop_branch(t, branch)
    ]


@contextmanager
def writing_to_branch(session: SparkSession, branch: str) -> Iterator[None]:
    """``spark.wap.branch`` = ``branch`` on ``session`` inside the block, as before after it."""
    previous = session.conf.get(WAP_BRANCH, None)
    session.conf.set(WAP_BRANCH, branch)
    try:
        yield
    finally:
        if previous is None:
            session.conf.unset(WAP_BRANCH)
        else:
            session.conf.set(WAP_BRANCH, previous)
