"""The shape of a contract's payload as both validators walk it: fields with their types,
the rules to evaluate, and the plan built once per contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakehouse_assets.contracts.document import Property, SumEquals
from lakehouse_assets.contracts.model import Column, Contract, RowRule


@dataclass(frozen=True)
class _Field:
    """A node of the payload: a property (``name``) or an array's items (``name == ""``)."""

    name: str
    logical: str
    arrow: pa.DataType
    decimal: tuple[int, int] | None
    children: tuple[_Field, ...]
    item: _Field | None

    @property
    def expected(self) -> str:
        """What the type rule asks for, in a reason."""
        if self.decimal is not None:
            return f"a decimal({self.decimal[0]},{self.decimal[1]})"
        if self.logical == "integer":
            return "an integer"
        if self.logical == "array" and self.item is not None:
            return f"an array of {self.item.logical}s"
        return "an object" if self.logical == "object" else f"a {self.logical}"


def _field(prop: Any, arrow: pa.DataType) -> _Field:
    name = prop.name if isinstance(prop, Property) else ""
    children: tuple[_Field, ...] = ()
    item = None
    if prop.logical_type == "object":
        assert isinstance(arrow, pa.StructType)
        children = tuple(
            _field(child, arrow.field(child.name).type) for child in prop.properties or ()
        )
    elif prop.logical_type == "array":
        assert isinstance(arrow, pa.ListType)
        assert prop.items is not None
        item = _field(prop.items, arrow.value_type)
    decimal = (arrow.precision, arrow.scale) if pa.types.is_decimal(arrow) else None
    return _Field(name, prop.logical_type, arrow, decimal, children, item)


@dataclass(frozen=True)
class _Plan:
    """A contract's payload compiled once: its field tree and its row rules."""

    contract: Contract
    fields: tuple[_Field, ...]
    chains: dict[str, tuple[_Field, ...]]
    """Per column path, the fields from the top level down to the column."""
    rules: tuple[RowRule, ...]

    @classmethod
    def build(cls, contract: Contract) -> _Plan:
        payload = contract.payload
        if payload is None:
            raise ValueError(
                f"{contract.path}: no schema object with physicalType: topic describes the payload"
            )
        schema = contract.arrow_schema(payload)
        props = contract.object(payload).properties
        fields = tuple(_field(prop, schema.field(prop.name).type) for prop in props)
        chains: dict[str, tuple[_Field, ...]] = {}

        def index(nodes: Sequence[_Field], prefix: str, chain: tuple[_Field, ...]) -> None:
            for node in nodes:
                path = f"{prefix}.{node.name}" if prefix else node.name
                chains[path] = (*chain, node)
                index(node.children, path, (*chain, node))
                if node.item is not None:
                    index(node.item.children, path, (*chain, node))

        index(fields, "", ())
        rules = tuple(rule for rule in contract.row_rules(payload) if rule.severity == "error")
        for rule in rules:
            if isinstance(rule.arguments, SumEquals):
                for path in (*rule.arguments.terms, rule.arguments.equals):
                    if contract.columns(payload)[path].in_array:
                        raise ValueError(
                            f"{contract.path}: rule {rule.id!r}: sum_equals takes columns "
                            f"outside arrays, {path!r} is inside one"
                        )
        return cls(contract, fields, chains, rules)

    def column(self, path: str) -> Column:
        payload = self.contract.payload
        assert payload is not None
        return self.contract.columns(payload)[path]


_PLANS: dict[int, tuple[Contract, _Plan]] = {}


def _plan(contract: Contract) -> _Plan:
    cached = _PLANS.get(id(contract))
    if cached is None or cached[0] is not contract:
        cached = (contract, _Plan.build(contract))
        _PLANS[id(contract)] = cached
    return cached[1]
