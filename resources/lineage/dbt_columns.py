"""Column lineage of dbt models, from dbt's manifest and compiled SQL, for gold's outputs.

dagster-dbt derives column lineage (``dagster/column_lineage``) with sqlglot when it
can query the warehouse for column types (``fetch_column_metadata``), which in-process
dbt does not offer. The same derivation needs less: the model's compiled SQL (in the
invocation's target directory once the model ran), its parents in the manifest, and
the parents' column names, read here from the Iceberg catalog. Ephemeral models
(staging) are CTEs of the compiled SQL, so a mart's columns resolve to the silver
tables behind them. The lineage is best effort: a model sqlglot cannot follow keeps
its other metadata and gets none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import dagster as dg

log = logging.getLogger(__name__)

#: ``(namespace, table) -> column names``, None when the table does not exist.
TableColumns = Callable[[str, str], "list[str] | None"]

_DIALECT = "spark"


def model_column_lineage(
    manifest: Mapping[str, Any],
    unique_id: str,
    compiled_sql: str,
    table_columns: TableColumns,
    asset_key_of: Callable[[Mapping[str, Any]], dg.AssetKey],
) -> dg.TableColumnLineage:
    """Each output column of model ``unique_id`` and the upstream asset columns it reads.

    Args:
        manifest: dbt's manifest (``manifest.json``).
        unique_id: the model's id, e.g. ``model.lakehouse.plain_daily_totals``.
        compiled_sql: the model's compiled SELECT.
        table_columns: the column names of a relation ``namespace.table``.
        asset_key_of: the asset key of a manifest node or source (the translator's).
    """
    from sqlglot import MappingSchema, exp, parse_one
    from sqlglot.expressions import normalize_table_name
    from sqlglot.lineage import lineage
    from sqlglot.optimizer import optimize

    relations = _relations(manifest)
    parsed = parse_one(compiled_sql, dialect=_DIALECT)
    schema = MappingSchema(dialect=_DIALECT)
    for table in parsed.find_all(exp.Table):
        name = normalize_table_name(table, dialect=_DIALECT)
        if name in relations and table.db:
            columns = table_columns(table.db, table.name)
            if columns:
                schema.add_table(table, dict.fromkeys(columns, "STRING"), dialect=_DIALECT)
    optimized = cast("exp.Query", optimize(parsed, schema=schema, dialect=_DIALECT))
    sql = optimized.sql(dialect=_DIALECT)
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for column in optimized.named_selects:
        found: set[dg.TableColumnDep] = set()
        for node in lineage(column, sql, schema=schema, dialect=_DIALECT).walk():
            source = node.expression.find(exp.Table)
            if node.downstream or source is None:
                continue
            parent = relations.get(normalize_table_name(source, dialect=_DIALECT))
            if parent is None or parent["unique_id"] == unique_id:
                continue
            found.add(
                dg.TableColumnDep(
                    asset_key=asset_key_of(parent),
                    column_name=exp.to_column(node.name).name.lower(),
                )
            )
        deps[column.lower()] = sorted(found, key=lambda d: (d.asset_key.path, d.column_name))
    return dg.TableColumnLineage(deps_by_column=deps)


def with_dbt_column_lineage(
    invocation: Any, table_columns: TableColumns, events: Iterable[Any]
) -> Iterator[Any]:
    """``events`` of a dbt invocation, each model output with its ``dagster/column_lineage``.

    ``invocation`` is dagster-dbt's ``DbtCliInvocation`` (its manifest, translator and
    target directory, where dbt writes each model's compiled SQL as it runs).
    """
    manifest: Mapping[str, Any] = invocation.manifest
    target = Path(invocation.target_path)
    translator = invocation.dagster_dbt_translator
    for event in events:
        lineage = _lineage_of(event, manifest, target, table_columns, translator.get_asset_key)
        if lineage is None:
            yield event
        else:
            yield event.with_metadata({**event.metadata, "dagster/column_lineage": lineage})


def _lineage_of(
    event: Any,
    manifest: Mapping[str, Any],
    target: Path,
    table_columns: TableColumns,
    asset_key_of: Callable[[Mapping[str, Any]], dg.AssetKey],
) -> dg.TableColumnLineage | None:
    """The column lineage of a model's output event, None for anything else or on failure."""
    if not isinstance(event, dg.Output):
        return None
    node = manifest["nodes"].get(_text(event.metadata.get("unique_id")) or "")
    if node is None or node["resource_type"] != "model":
        return None
    path = target / "compiled" / node["package_name"] / node["original_file_path"]
    try:
        return model_column_lineage(
            manifest, node["unique_id"], path.read_text(), table_columns, asset_key_of
        )
    except Exception as exc:  # best effort: lineage never fails a model
        log.warning("no column lineage for %s: %s", node["unique_id"], exc)
        return None


def _relations(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Normalised relation name -> manifest node or source, for every one with a relation."""
    from sqlglot import to_table
    from sqlglot.expressions import normalize_table_name

    found: dict[str, Mapping[str, Any]] = {}
    for props in [*manifest["nodes"].values(), *manifest["sources"].values()]:
        relation = props.get("relation_name")
        if relation:
            table = to_table(relation, dialect=_DIALECT)
            found[normalize_table_name(table, dialect=_DIALECT)] = props
    return found


def _text(entry: Any) -> str | None:
    value = getattr(entry, "value", entry)
    return value if isinstance(value, str) else None


def iceberg_columns(load_catalog: Callable[[], Any]) -> TableColumns:
    """:data:`TableColumns` from the pyiceberg catalog ``load_catalog`` returns."""

    def columns(namespace: str, table: str) -> list[str] | None:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            schema = load_catalog().load_table((namespace, table)).schema()
        except NoSuchTableError:
            return None
        return [field.name for field in schema.fields]

    return columns
