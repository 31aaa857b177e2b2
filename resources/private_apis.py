"""Every private API the project relies on, in one place: why, and the version checked.

Checked against Python 3.11, dagster 1.13.27, dagster-dbt 0.29.27, dagster-openlineage 0.2.1,
dbt-spark 1.11.0, pyiceberg 0.12.0 and pyspark 3.5.8 (see ``requirements.lock``). When one of
them is upgraded, re-check this module; nothing outside it names a private module or
attribute of those libraries, except :mod:`resources.spark.driver`, the shared warm
driver, whose whole purpose is to host one SparkContext for several processes through
PySpark's Py4J internals (its module docstring lists them).

Each wrapper imports its library only when called: Spark's Python workers import
:mod:`lakehouse_assets.silver.validation`, which uses :func:`parse_regex`, and must not
pay for Dagster or dbt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import re._parser

    import pyarrow as pa
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )
    from dagster._core.launcher.base import CheckRunHealthResult
    from pyiceberg.schema import Schema
    from pyspark import SparkContext
    from pyspark.sql import Column, SparkSession

    #: What ``dg.define_asset_job`` returns; Dagster does not export the name.
    AssetJob = UnresolvedAssetJobDefinition
else:
    AssetJob = Any


# Python ------------------------------------------------------------------------------------


def parse_regex(pattern: str) -> re._parser.SubPattern:
    """The parse tree of a ``re`` pattern.

    Why: the Java certifier accepts a contract pattern only when it can re-emit it for
    ``java.util.regex`` with the same meaning, which needs Python's own parse of it;
    ``re`` exposes no public parser (``sre_parse`` became ``re._parser`` in 3.11).
    """
    import re._parser as sre_parse

    return sre_parse.parse(pattern)


# pyiceberg ---------------------------------------------------------------------------------


def iceberg_schema_of(schema: pa.Schema) -> Schema:
    """An Arrow schema as the Iceberg schema pyiceberg would create a table with.

    Why: the additive schema evolution compares an input's schema with the table's in
    Iceberg's types, converted exactly as pyiceberg converts it when it creates or
    appends (``Catalog._convert_schema_if_needed``, pyiceberg 0.12), which it does not
    export. ``UpdateSchema.union_by_name`` does the conversion itself but applies its
    own rules: it adds non-nullable input columns as required and relaxes required
    table columns when the input is nullable, where the IO manager keeps the table's
    nullability and names every non-additive change.
    """
    from pyiceberg.catalog import Catalog

    return Catalog._convert_schema_if_needed(schema)


# PySpark -----------------------------------------------------------------------------------


def jvm(spark: SparkSession | SparkContext) -> Any:
    """The Py4J view of the session's JVM (``SparkSession._jvm``, ``SparkContext._jvm``).

    Why: PySpark has no public accessor, and the project calls JVM code that is not a
    registered function: the payload certifier's UDF object, Iceberg's
    ``CommitMetadata`` thread-local, a class probe, log4j's level of one logger.
    """
    from pyspark import SparkContext

    context = spark if isinstance(spark, SparkContext) else spark.sparkContext
    return context._jvm


def jvm_has_class(spark: SparkSession, name: str) -> bool:
    """Whether the session's JVM can load class ``name``.

    Why: Py4J answers an unknown dotted name with a package view, not an error; only
    its ``JavaClass`` type tells a loadable class apart.
    """
    from py4j.java_gateway import JavaClass

    node: Any = jvm(spark)
    for part in name.split("."):
        node = getattr(node, part)
    return isinstance(node, JavaClass)


def java_session(spark: SparkSession) -> Any:
    """The JVM ``SparkSession`` behind a PySpark session (``SparkSession._jsparkSession``).

    Why: Iceberg's Spark actions (``SparkActions.get(session)``) take the Java session,
    and PySpark has no public accessor. Used for ``DeleteOrphanFiles``, whose
    procedure refuses ages under 24 h (:mod:`resources.iceberg.maintenance`).
    """
    return spark._jsparkSession


def apply_jvm_udf(spark: SparkSession, udf: Any, column: Column) -> Column:
    """``udf(column)`` for a Spark ``UserDefinedFunction`` object made by Java code.

    Why: the payload certifier builds one UDF object per contract in Java (its rules
    are data, not classes), and PySpark's public API calls Java UDFs only by class
    name (``spark.udf.registerJavaFunction``). Applying an object to a column takes
    PySpark's ``_to_seq`` and ``_to_java_column`` (``pyspark.sql.column``).
    """
    from pyspark.sql.column import Column as SparkColumn
    from pyspark.sql.column import _to_java_column, _to_seq

    return SparkColumn(udf.apply(_to_seq(spark.sparkContext, [column], _to_java_column)))


def active_spark_context() -> SparkContext | None:
    """This process's running SparkContext, or None, without creating one.

    Why: ``SparkContext.getOrCreate()`` would start a JVM where none runs, and
    ``SparkSession.getActiveSession()`` is per thread (dbt runs on a thread of its own);
    PySpark keeps the process-wide one in ``SparkContext._active_spark_context``.
    """
    from pyspark import SparkContext

    return SparkContext._active_spark_context


# dagster-openlineage ----------------------------------------------------------------------


def install_openlineage_sensor_adapter(adapter: Any) -> None:
    """Make dagster-openlineage's sensor emit through ``adapter``.

    Why: ``openlineage_sensor`` (dagster-openlineage 0.2.1) takes no adapter nor client;
    every sensor of the process emits through the module's ``_ADAPTER``, built at import
    from openlineage-python's environment configuration. The lakehouse configures the
    transport in ``config/lakehouse.yaml`` and names datasets by storage
    (:class:`resources.lineage.adapter.LakehouseLineageAdapter`), so it replaces it.
    The sensor reads the global on every tick, so the replacement applies to it.
    """
    import dagster_openlineage.sensor as sensor_module

    sensor_module._ADAPTER = adapter


# Dagster -----------------------------------------------------------------------------------


def run_worker_health(alive: bool, reason: str = "") -> CheckRunHealthResult:
    """What a run launcher's ``check_run_worker_health`` returns.

    Why: run monitoring asks the launcher for a run worker's health through this result
    type, which ``dagster`` does not export (``dagster._core.launcher.base``).
    """
    from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

    if alive:
        return CheckRunHealthResult(WorkerStatus.RUNNING)
    return CheckRunHealthResult(WorkerStatus.FAILED, reason)


def metadata_from_pipes(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Pipes' typed metadata values (``{"type", "raw_value"}``) as Dagster's.

    Why: a Pipes process reports per-day metadata in a custom message (Pipes reports a
    materialisation per asset, not per partition); Dagster turns typed values into
    metadata values for its own messages only, in
    ``dagster._core.definitions.metadata.external_metadata``, which it does not export.
    """
    from dagster._core.definitions.metadata.external_metadata import (
        metadata_map_from_external,
    )

    return dict(metadata_map_from_external(metadata))


# dagster-dbt -------------------------------------------------------------------------------


def dbt_default_target_path() -> Path:
    """dbt's target path as dagster-dbt resolves it (``DBT_TARGET_PATH`` or ``target``).

    Why: the in-process dbt resource seeds each invocation's target directory with the
    project parse's ``partial_parse.msgpack`` exactly where dagster-dbt's CLI resource
    looks for it (``dagster_dbt.core.dbt_cli_invocation._get_dbt_target_path``).
    """
    from dagster_dbt.core.dbt_cli_invocation import _get_dbt_target_path

    return Path(_get_dbt_target_path())


def dbt_cli_helpers() -> Any:
    """dagster-dbt's helpers that ``DbtCliResource.cli`` uses, as one namespace.

    Why: :class:`resources.dbt.in_process.InProcessDbtResource.cli` mirrors
    ``DbtCliResource.cli`` except for how dbt starts, so it resolves the selection,
    validates the manifest and translator and updates the invocation's parameters with
    the same functions, which live in dagster-dbt's submodules
    (``asset_utils``, ``dagster_dbt_translator``, ``dbt_manifest``), not its exports.
    """
    from types import SimpleNamespace

    from dagster_dbt.asset_utils import (
        extract_runtime_selection_from_args,
        get_updated_cli_invocation_params_for_context,
    )
    from dagster_dbt.dagster_dbt_translator import validate_opt_translator
    from dagster_dbt.dbt_manifest import validate_manifest

    return SimpleNamespace(
        extract_runtime_selection_from_args=extract_runtime_selection_from_args,
        get_updated_cli_invocation_params_for_context=get_updated_cli_invocation_params_for_context,
        validate_opt_translator=validate_opt_translator,
        validate_manifest=validate_manifest,
    )


# dbt-spark ---------------------------------------------------------------------------------


@contextmanager
def dbt_spark_statements_through(run: Callable[[Callable[[], None]], None]) -> Iterator[None]:
    """Inside the block, dbt-spark's session mode runs every SQL statement as ``run(statement)``.

    Why: Iceberg gives a SQL statement's commit snapshot properties only through a JVM
    thread-local (``CommitMetadata``) on the thread that runs it, and dbt-spark runs each
    statement on dbt's own threads in ``dbt.adapters.spark.session.Cursor.execute``
    (dbt-spark 1.11), with no hook around it (dbt-adapters #1925). One dbt invocation
    runs in a process at a time (:mod:`resources.dbt.in_process`), so replacing the
    method for the block's duration reaches exactly that invocation's statements.
    """
    from dbt.adapters.spark import session

    original = session.Cursor.execute

    def execute(self: Any, sql: str, *parameters: Any) -> None:
        run(lambda: original(self, sql, *parameters))

    session.Cursor.execute = execute  # type: ignore[method-assign]
    try:
        yield
    finally:
        session.Cursor.execute = original  # type: ignore[method-assign]
