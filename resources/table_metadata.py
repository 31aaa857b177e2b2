"""Dagster table metadata that the IO managers and gold attach to their materialisations."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """``dagster/column_schema`` for an Arrow schema."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=str(f.type),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in schema
        ]
    )
