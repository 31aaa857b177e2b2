"""Additive schema evolution of Iceberg tables, with named errors for everything else.

New columns are added as optional columns; ``int`` -> ``long``, ``float`` -> ``double``
and wider decimal precision widen a column. Every other change (narrowing, a changed
type, a required column missing from the input) fails with an
:class:`~resources.iceberg.writes.IcebergSchemaError` naming the table, the column
and the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from resources.iceberg.writes import (
    IcebergSchemaError,
)
from resources.private_apis import iceberg_schema_of

if TYPE_CHECKING:
    from pyiceberg.schema import Schema
    from pyiceberg.types import IcebergType, StructType


@dataclass
class SchemaPlan:
    """Additive changes that make a table accept an input schema."""

    additions: list[tuple[tuple[str, ...], IcebergType]] = field(default_factory=list)
    widenings: list[tuple[tuple[str, ...], IcebergType, IcebergType]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[str]:
        added = [f"added column {'.'.join(p)} ({t})" for p, t in self.additions]
        widened = [f"widened column {'.'.join(p)} from {a} to {b}" for p, a, b in self.widenings]
        return added + widened

    def __bool__(self) -> bool:
        return bool(self.additions or self.widenings)


def _is_widening(current: IcebergType, incoming: IcebergType) -> bool:
    """Iceberg's type promotions: int → long, float → double, decimal(P, S) → decimal(P', S)."""
    from pyiceberg.types import DecimalType, DoubleType, FloatType, IntegerType, LongType

    if isinstance(current, IntegerType) and isinstance(incoming, LongType):
        return True
    if isinstance(current, FloatType) and isinstance(incoming, DoubleType):
        return True
    return (
        isinstance(current, DecimalType)
        and isinstance(incoming, DecimalType)
        and current.scale == incoming.scale
        and incoming.precision > current.precision
    )


def plan_schema_evolution(table_name: str, current: Schema, incoming: pa.Schema) -> SchemaPlan:
    """The additive changes that let ``current`` accept ``incoming``, or an error naming them."""
    plan = SchemaPlan()
    converted = iceberg_schema_of(incoming)
    _diff_struct(current.as_struct(), converted.as_struct(), (), plan)
    if plan.errors:
        raise IcebergSchemaError(
            f"Iceberg table {table_name}: the input needs incompatible schema change(s): "
            + "; ".join(plan.errors)
            + ". Only additive changes evolve automatically (new optional columns, int → long, "
            "float → double, wider decimal precision); change the table's schema explicitly "
            "(or write the column with its table type)."
        )
    return plan


def _diff_struct(
    current: StructType, incoming: StructType, path: tuple[str, ...], plan: SchemaPlan
) -> None:
    for incoming_field in incoming.fields:
        existing = current.field_by_name(incoming_field.name)
        field_path = (*path, incoming_field.name)
        if existing is None:
            plan.additions.append((field_path, incoming_field.field_type))
        else:
            _diff_type(existing.field_type, incoming_field.field_type, field_path, plan)
    for existing in current.fields:
        if existing.required and incoming.field_by_name(existing.name) is None:
            plan.errors.append(
                f"column {'.'.join((*path, existing.name))!r} is required "
                f"({existing.field_type}) but missing from the input"
            )


def _diff_type(
    current: IcebergType, incoming: IcebergType, path: tuple[str, ...], plan: SchemaPlan
) -> None:
    from pyiceberg.exceptions import ResolveError
    from pyiceberg.schema import promote
    from pyiceberg.types import ListType, MapType, PrimitiveType, StructType

    name = ".".join(path)
    if current == incoming:
        return
    if isinstance(current, StructType) and isinstance(incoming, StructType):
        _diff_struct(current, incoming, path, plan)
    elif isinstance(current, ListType) and isinstance(incoming, ListType):
        _diff_type(current.element_type, incoming.element_type, (*path, "element"), plan)
    elif isinstance(current, MapType) and isinstance(incoming, MapType):
        if current.key_type != incoming.key_type:
            plan.errors.append(
                f"column {name!r}: map key type changes from {current.key_type} to "
                f"{incoming.key_type}"
            )
        _diff_type(current.value_type, incoming.value_type, (*path, "value"), plan)
    elif _is_widening(current, incoming):
        plan.widenings.append((path, current, incoming))
    elif isinstance(current, PrimitiveType) and isinstance(incoming, PrimitiveType):
        try:
            promote(incoming, current)
            narrowing = True
        except ResolveError:
            narrowing = False
        kind = "type narrowing" if narrowing else "incompatible type change"
        plan.errors.append(f"column {name!r}: {kind} from {current} to {incoming}")
    else:
        plan.errors.append(
            f"column {name!r}: incompatible type change from {current} to {incoming}"
        )
