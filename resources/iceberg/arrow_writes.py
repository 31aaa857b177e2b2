"""Writing Arrow tables to Iceberg with pyiceberg: one attempt, one catalog commit.

:class:`~resources.iceberg.io_manager.IcebergIOManager` prepares the request and the
rows and retries conflicting attempts; an attempt creates or evolves the table
(:func:`~resources.iceberg.writes.begin_write`) and appends, overwrites the run's
window, or upserts by key (:func:`stage_upsert`) in the same transaction.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, cast

import pyarrow as pa
import pyarrow.compute as pc

from resources.iceberg.branches import MAIN, ensure_branch
from resources.iceberg.tables import begin_write
from resources.iceberg.writes import (
    _POS,
    WriteRequest,
    WriteResult,
    _sorted,
    conform_nullability,
    window_filter,
)

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table, Transaction

    from resources.iceberg.catalog import IcebergCatalogResource

#: The stored sequence of a key, joined to the incoming rows.
_SEQ = "__lakehouse_existing_sequence"


def write_attempt(
    catalog: IcebergCatalogResource, request: WriteRequest, df: pa.Table
) -> WriteResult:
    """One attempt: (create or evolve) and write in a single catalog commit."""
    from pyiceberg.expressions import AlwaysTrue

    table, tx, plan = begin_write(catalog, request, df.schema)
    branch = request.branch
    if branch:
        # A branch starts from a snapshot of main: the table and its schema are
        # committed first (readers of main see no rows change), the rows go to the branch.
        if table is None or plan:
            tx.commit_transaction()
        table = ensure_branch(catalog.load().load_table(request.identifier), branch)
        tx = table.transaction()
    df = conform_nullability(df, tx.table_metadata.schema(), request.table_name)
    props = dict(request.snapshot_properties)
    details: dict[str, int] = {}
    target = branch or MAIN

    with warnings.catch_warnings():
        # "Delete operation did not match any records": normal for a new partition.
        warnings.filterwarnings("ignore", message="Delete operation did not match")
        if request.mode == "append" or (table is None and request.mode == "overwrite"):
            tx.append(df, snapshot_properties=props, branch=target)
        elif request.mode == "overwrite":
            overwrite_filter: BooleanExpression = AlwaysTrue()
            if request.time_window is not None:
                overwrite_filter = window_filter(
                    tx.table_metadata.schema(),
                    cast(str, request.partition_expr),
                    request.time_window,
                    request.table_name,
                )
            tx.overwrite(
                df, overwrite_filter=overwrite_filter, snapshot_properties=props, branch=target
            )
        else:
            df, details = stage_upsert(tx, table, df, request, props)

    committed = tx.commit_transaction()
    snapshot = committed.snapshot_by_name(branch) if branch else committed.current_snapshot()
    return WriteResult(
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        rows=df.num_rows,
        schema=committed.schema().as_arrow(),
        location=committed.location(),
        attempts=1,
        schema_changes=plan.changes,
        details=details,
    )


def stage_upsert(
    tx: Transaction,
    table: Table | None,
    df: pa.Table,
    request: WriteRequest,
    props: dict[str, str],
) -> tuple[pa.Table, dict[str, int]]:
    """Stage the rows that are newer than what the table holds for their key.

    The input is already deduplicated (one row per key, the highest sequence).
    Rows whose key is stored with an equal or higher sequence are dropped (a late,
    older version or a replay); the others replace every stored row of their key
    through an overwrite filtered on the keys. Under Iceberg's default serializable
    isolation, a concurrent writer adding rows for the same keys makes the commit
    fail validation, and the whole attempt is recomputed.
    """
    from pyiceberg.table.upsert_util import create_match_filter

    keys = list(request.primary_key)
    sequence = cast(str, request.sequence_column)
    kept = df
    updated = 0
    if table is not None and df.num_rows:
        match = create_match_filter(df, keys)
        scan = table.scan(row_filter=match, selected_fields=(*keys, sequence))
        if request.branch:
            scan = scan.use_ref(request.branch)
        existing = scan.to_arrow()
        if existing.num_rows:
            # Several stored rows per key can exist (earlier appends): compare with the max.
            stored = existing.group_by(keys).aggregate([(sequence, "max")])
            stored = stored.rename_columns([*keys, _SEQ])
            incoming = df.select([*keys, sequence]).append_column(
                _POS, pa.array(range(df.num_rows), pa.int64())
            )
            joined = incoming.join(stored, keys=keys, join_type="left outer")
            newer = pc.or_kleene(
                pc.is_null(joined.column(_SEQ)),
                pc.greater(joined.column(sequence), joined.column(_SEQ)),
            )
            chosen = joined.filter(newer)
            updated = int(pc.sum(pc.is_valid(chosen.column(_SEQ))).as_py() or 0)
            kept = df.take(_sorted(chosen.column(_POS)))
    target = request.branch or MAIN
    if table is None:
        tx.append(kept, snapshot_properties=props, branch=target)
    elif kept.num_rows:
        tx.overwrite(
            kept,
            overwrite_filter=create_match_filter(kept, keys),
            snapshot_properties=props,
            branch=target,
        )
    details = {
        "rows_inserted": kept.num_rows - updated,
        "rows_updated": updated,
        "rows_skipped_not_newer": df.num_rows - kept.num_rows,
    }
    return kept, details
