"""The table of a write: created with its partitioning, or evolved for the input's schema.

Both writers start an attempt here (:func:`begin_write`), so a table is created,
partitioned and evolved the same way whichever engine writes its rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from resources.iceberg.schema_evolution import SchemaPlan, plan_schema_evolution
from resources.iceberg.writes import (
    TABLE_PROPERTIES,
    WriteRequest,
    _partition_field_name,
    partition_transform,
)

if TYPE_CHECKING:
    from pyiceberg.table import Table, Transaction

    from resources.iceberg.catalog import IcebergCatalogResource


def begin_write(
    catalog: IcebergCatalogResource, request: WriteRequest, schema: pa.Schema
) -> tuple[Table | None, Transaction, SchemaPlan]:
    """A transaction that creates the table (partitioned) or evolves it for ``schema``.

    Returns the table as loaded (``None`` when it is being created), the transaction
    and the schema changes it holds.
    """
    from pyiceberg.exceptions import NoSuchTableError

    loaded = catalog.load()
    table: Table | None
    try:
        table = loaded.load_table(request.identifier)
    except NoSuchTableError:
        table = None

    plan = SchemaPlan()
    tx: Transaction
    if table is None:
        tx = loaded.create_table_transaction(
            request.identifier, schema=schema, properties=TABLE_PROPERTIES
        )
        if request.partition_expr and request.time_window is not None:
            transform = partition_transform(
                tx.table_metadata.schema(), request.partition_expr, request
            )
            with tx.update_spec() as spec:
                spec.add_field(
                    request.partition_expr, transform, _partition_field_name(request, transform)
                )
    else:
        tx = table.transaction()
        plan = plan_schema_evolution(request.table_name, table.schema(), schema)
        if plan:
            with tx.update_schema() as update:
                for path, new_type in plan.additions:
                    update.add_column(path, new_type, required=False)
                for path, _, wider in plan.widenings:
                    update.update_column(path, field_type=wider)
    return table, tx, plan
