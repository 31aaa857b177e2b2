"""Semantic checks of a contract document that its model alone cannot express."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from lakehouse_assets.contracts.document import (
    _DECIMAL,
    _IDENTIFIER,
    _NUMERIC,
    _OPERATORS,
    _PHYSICAL_TYPES,
    _PROPERTY_NAME,
    _SCALARS,
    _TIMES,
    BuiltinArguments,
    LinesSumTo,
    Property,
    QualityRule,
    SchemaObject,
    SumEquals,
    _Document,
    _PropertyBase,
)
from lakehouse_assets.contracts.errors import (
    Loc,
    Problem,
)
from lakehouse_assets.contracts.model import (
    Column,
    _walk,
)
from lakehouse_assets.contracts.rule_kinds import BUILTIN_RULES, RULE_KINDS
from lakehouse_assets.contracts.yaml_lines import (
    _describe,
    _locate,
    _render,
)


class _Checker:
    """Cross-field rules pydantic cannot see: references, keys, bounds, duplicates."""

    def __init__(self, path: Path, lines: Mapping[Loc, int]) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []
        self.builtin_arguments: dict[str, BuiltinArguments] = {}
        self.objects: dict[str, SchemaObject] = {}

    def fail(self, loc: Loc, reason: str) -> None:
        self.problems.append(Problem(_locate(self.lines, loc), _render(loc), reason))

    def check(self, document: _Document) -> None:
        self.objects = {obj.name: obj for obj in document.schema_}
        if not _IDENTIFIER.match(document.name):
            self.fail(("name",), f"{document.name!r} is not a lowercase dataset identifier")
        elif self.path.stem != document.name:
            self.fail(("name",), f"dataset {document.name!r} must live in {document.name}.yaml")
        names: set[str] = set()
        rule_ids: dict[str, Loc] = {}
        topics = 0
        for index, obj in enumerate(document.schema_):
            loc: Loc = ("schema", index)
            if not _IDENTIFIER.match(obj.name):
                self.fail((*loc, "name"), f"{obj.name!r} is not a lowercase identifier")
            if obj.name in names:
                self.fail((*loc, "name"), f"duplicate schema object {obj.name!r}")
            names.add(obj.name)
            topics += obj.physical_type == "topic"
            if topics > 1 and obj.physical_type == "topic":
                self.fail((*loc, "physicalType"), "only one object may describe the payload")
            self.check_object(obj, loc, rule_ids)
        self.check_slas(document)

    def check_object(self, obj: SchemaObject, loc: Loc, rule_ids: dict[str, Loc]) -> None:
        self.check_properties(obj.properties, (*loc, "properties"), rule_ids, top=True)
        columns = {column.path: column for column, _ in _walk(obj.properties)}
        top = {prop.name: prop for prop in obj.properties}
        positions: set[int] = set()
        partitioned = 0
        for index, prop in enumerate(obj.properties):
            ploc: Loc = (*loc, "properties", index)
            if prop.primary_key and prop.logical_type not in _SCALARS:
                self.fail((*ploc, "primaryKey"), f"key column {prop.name!r} must be a scalar")
            if prop.primary_key_position is not None:
                if not prop.primary_key:
                    self.fail((*ploc, "primaryKeyPosition"), "set without primaryKey: true")
                if prop.primary_key_position in positions:
                    self.fail((*ploc, "primaryKeyPosition"), "duplicate key position")
                positions.add(prop.primary_key_position)
            if prop.partitioned:
                partitioned += 1
                if prop.logical_type not in _TIMES:
                    self.fail(
                        (*ploc, "partitioned"), "the partition column must be a date or timestamp"
                    )
                if partitioned > 1:
                    self.fail((*ploc, "partitioned"), "only one column can be partitioned")
        if obj.sequence_column is not None:
            seq = top.get(obj.sequence_column)
            if seq is None:
                self.fail(
                    (*loc, "sequenceColumn"),
                    f"unknown column {obj.sequence_column!r} (not a top-level property of {obj.name!r})",
                )
            elif seq.logical_type not in ("integer", *_TIMES):
                self.fail(
                    (*loc, "sequenceColumn"),
                    f"{obj.sequence_column!r} must be an integer, date or timestamp",
                )
        for index, rule in enumerate(obj.quality):
            self.check_rule(obj, rule, (*loc, "quality", index), columns, rule_ids)

    def check_properties(
        self,
        properties: Sequence[_PropertyBase],
        loc: Loc,
        rule_ids: dict[str, Loc],
        top: bool,
    ) -> None:
        seen: set[str] = set()
        for index, prop in enumerate(properties):
            ploc: Loc = (*loc, index)
            if isinstance(prop, Property):
                if not _PROPERTY_NAME.match(prop.name):
                    self.fail((*ploc, "name"), f"{prop.name!r} is not an identifier")
                if prop.name in seen:
                    self.fail((*ploc, "name"), f"duplicate column {prop.name!r}")
                seen.add(prop.name)
                if not top:
                    for flag in ("primaryKey", "partitioned"):
                        if getattr(prop, _to_snake(flag)):
                            self.fail((*ploc, flag), "only top-level properties can have it")
            self.check_property(prop, ploc, rule_ids)

    def check_property(self, prop: _PropertyBase, loc: Loc, rule_ids: dict[str, Loc]) -> None:
        logical = prop.logical_type
        if prop.physical_type is not None:
            is_decimal = _DECIMAL.match(prop.physical_type)
            if is_decimal and logical == "number":
                precision, scale = int(is_decimal.group(1)), int(is_decimal.group(2))
                if not 1 <= precision <= 38 or scale > precision:
                    self.fail(
                        (*loc, "physicalType"),
                        f"{prop.physical_type}: need 1 <= precision <= 38 and scale <= precision",
                    )
            elif prop.physical_type not in _PHYSICAL_TYPES[logical]:
                allowed = [
                    *_PHYSICAL_TYPES[logical],
                    *(["decimal(p,s)"] if logical == "number" else []),
                ]
                self.fail(
                    (*loc, "physicalType"),
                    f"{prop.physical_type!r} does not fit logicalType {logical!r} "
                    f"(allowed: {', '.join(allowed)})",
                )
        if logical == "object":
            if not prop.properties:
                self.fail((*loc, "properties"), "an object needs properties")
            else:
                self.check_properties(prop.properties, (*loc, "properties"), rule_ids, top=False)
        elif prop.properties is not None:
            self.fail((*loc, "properties"), f"only objects have properties, not {logical}")
        if logical == "array":
            if prop.items is None:
                self.fail((*loc, "items"), "an array needs items")
            else:
                self.check_property(prop.items, (*loc, "items"), rule_ids)
        elif prop.items is not None:
            self.fail((*loc, "items"), f"only arrays have items, not {logical}")
        self.check_options(prop, (*loc, "logicalTypeOptions"))
        for index, rule in enumerate(prop.quality):
            rloc: Loc = (*loc, "quality", index)
            self.unique_id(rule, rloc, rule_ids)
            if rule.rule is not None:
                self.fail((*rloc, "rule"), "built-in rules belong in the object's quality list")
            elif rule.metric == "rowCount":
                self.fail((*rloc, "metric"), "rowCount belongs in the object's quality list")
            elif rule.metric == "duplicateValues":
                self.check_duplicates(rule, rloc)
            else:
                self.check_comparison(rule, rloc, prop)

    def check_options(self, prop: _PropertyBase, loc: Loc) -> None:
        options, logical = prop.logical_type_options, prop.logical_type
        applies = {
            "enum": ("string", "integer"),
            "pattern": ("string",),
            "minimum": _NUMERIC,
            "maximum": _NUMERIC,
            "min_length": ("string",),
            "max_length": ("string",),
            "min_items": ("array",),
            "max_items": ("array",),
        }
        for name, types in applies.items():
            if getattr(options, name) is not None and logical not in types:
                self.fail(
                    (*loc, to_camel(name)),
                    f"does not apply to logicalType {logical!r} (only {', '.join(types)})",
                )
        for low, high in (
            ("minimum", "maximum"),
            ("min_length", "max_length"),
            ("min_items", "max_items"),
        ):
            low_value, high_value = getattr(options, low), getattr(options, high)
            if low_value is not None and high_value is not None and low_value > high_value:
                self.fail(
                    (*loc, to_camel(low)),
                    f"{to_camel(low)} {low_value} is greater than {to_camel(high)} {high_value}",
                )
        if options.enum is not None:
            wanted = str if logical == "string" else int
            for index, value in enumerate(options.enum):
                if type(value) is not wanted:
                    self.fail((*loc, "enum", index), f"{value!r} is not a {logical}")

    def unique_id(self, rule: QualityRule, loc: Loc, rule_ids: dict[str, Loc]) -> None:
        if rule.id in rule_ids:
            first = _locate(self.lines, rule_ids[rule.id])
            self.fail((*loc, "id"), f"duplicate rule id {rule.id!r} (first on line {first})")
        else:
            rule_ids[rule.id] = (*loc, "id")

    def check_threshold(self, rule: QualityRule, loc: Loc, what: str) -> bool:
        thresholds = rule.thresholds()
        if len(thresholds) != 1:
            keys = ", ".join(to_camel(name) for name in _OPERATORS)
            found = ", ".join(to_camel(name) for name, _, _ in thresholds) or "none"
            self.fail(loc, f"{what} needs exactly one of {keys} (found: {found})")
            return False
        name, operator, value = thresholds[0]
        if operator == "between" and value[0] > value[1]:
            self.fail(
                (*loc, to_camel(name)),
                f"lower bound {value[0]} is greater than upper bound {value[1]}",
            )
            return False
        return True

    def check_comparison(self, rule: QualityRule, loc: Loc, prop: _PropertyBase) -> None:
        if rule.arguments:
            self.fail((*loc, "arguments"), "a comparison takes no arguments")
        if (
            self.check_threshold(rule, loc, "a comparison rule")
            and prop.logical_type not in _NUMERIC
        ):
            self.fail(
                loc, f"comparisons apply to integer or number columns, not {prop.logical_type}"
            )

    def check_duplicates(self, rule: QualityRule, loc: Loc) -> None:
        if self.check_threshold(rule, loc, "duplicateValues") and rule.must_be != 0:
            self.fail(loc, "duplicateValues supports `mustBe: 0` only")

    def check_rule(
        self,
        obj: SchemaObject,
        rule: QualityRule,
        loc: Loc,
        columns: Mapping[str, Column],
        rule_ids: dict[str, Loc],
    ) -> None:
        self.unique_id(rule, loc, rule_ids)
        if rule.metric is not None and rule.rule is not None:
            self.fail((*loc, "rule"), "give either `metric` or `rule`, not both")
        elif rule.metric == "rowCount":
            if rule.arguments:
                self.fail((*loc, "arguments"), "rowCount takes no arguments")
            if self.check_threshold(rule, loc, "rowCount"):
                _, _, value = rule.thresholds()[0]
                values = value if isinstance(value, tuple) else (value,)
                if any(v < 0 or v != int(v) for v in values):
                    self.fail(loc, "row counts are whole numbers >= 0")
        elif rule.metric == "duplicateValues":
            self.check_duplicates(rule, loc)
            names = rule.arguments.get("properties")
            if not isinstance(names, list) or not names:
                self.fail(
                    (*loc, "arguments"), "duplicateValues needs arguments.properties: [columns]"
                )
            else:
                for index, name in enumerate(names):
                    if name not in columns or columns[name].in_array or "." in str(name):
                        self.fail(
                            (*loc, "arguments", "properties", index),
                            f"unknown column {name!r} (not a top-level property of {obj.name!r})",
                        )
        elif rule.rule is not None:
            self.check_builtin(obj, rule, loc, columns)
        else:
            self.fail(
                loc,
                "an object-level rule needs `metric` or `rule`; "
                "put a column comparison under the property's quality",
            )

    def check_builtin(
        self,
        obj: SchemaObject,
        rule: QualityRule,
        loc: Loc,
        columns: Mapping[str, Column],
    ) -> None:
        assert rule.rule is not None
        model = BUILTIN_RULES.get(rule.rule)
        if model is None:
            known = ", ".join(BUILTIN_RULES)
            self.fail((*loc, "rule"), f"unknown built-in rule {rule.rule!r} (known: {known})")
            return
        subjects = RULE_KINDS[rule.rule].subjects
        on_topic = obj.physical_type == "topic"
        fits = "payload" in subjects if on_topic else bool(subjects & {"table_rows", "table"})
        if not fits:
            where = "a topic's payloads" if on_topic else "silver tables"
            self.fail((*loc, "rule"), f"built-in rule {rule.rule!r} does not apply to {where}")
            return
        if rule.thresholds():
            self.fail(loc, f"built-in rule {rule.rule!r} takes no mustBe… threshold")
        try:
            arguments = model.model_validate(rule.arguments)
        except ValidationError as exc:
            for error in exc.errors():
                self.fail((*loc, "arguments", *error["loc"]), _describe(error))
            return
        self.builtin_arguments[f"{obj.name}/{rule.id}"] = arguments
        aloc: Loc = (*loc, "arguments")

        def need(key: Loc, name: str | None, among: Mapping[str, Column], where: str) -> None:
            if name is None:
                return
            column = among.get(name)
            if column is None:
                self.fail((*aloc, *key), f"unknown column {name!r} in {where}")
            elif column.logical_type not in _NUMERIC:
                self.fail(
                    (*aloc, *key), f"{name!r} in {where} is {column.logical_type}, not a number"
                )

        def need_all(names: Sequence[str], among: Mapping[str, Column], where: str) -> None:
            for index, name in enumerate(names):
                if name not in among:
                    self.fail((*aloc, "key", index), f"unknown column {name!r} in {where}")

        if isinstance(arguments, SumEquals):
            for index, term in enumerate(arguments.terms):
                need(("terms", index), term, columns, obj.name)
            need(("equals",), arguments.equals, columns, obj.name)
        elif isinstance(arguments, LinesSumTo):
            lines = columns.get(arguments.lines)
            if lines is None or lines.logical_type != "array":
                self.fail(
                    (*aloc, "lines"), f"{arguments.lines!r} is not an array property of {obj.name}"
                )
            else:
                prefix = arguments.lines + "."
                items = {p[len(prefix) :]: c for p, c in columns.items() if p.startswith(prefix)}
                where = f"{obj.name}.{arguments.lines}[]"
                need(("quantity",), arguments.quantity, items, where)
                need(("unitPrice",), arguments.unit_price, items, where)
                need(("discount",), arguments.discount, items, where)
            need(("equals",), arguments.equals, columns, obj.name)
        else:
            child = self.objects.get(arguments.lines_table)
            if child is None or child.physical_type != "table" or child.name == obj.name:
                self.fail(
                    (*aloc, "linesTable"),
                    f"{arguments.lines_table!r} is not another table of this contract",
                )
                return
            child_columns = {c.path: c for c, _ in _walk(child.properties)}
            need_all(arguments.key, columns, obj.name)
            need_all(arguments.key, child_columns, child.name)
            need(("quantity",), arguments.quantity, child_columns, child.name)
            need(("unitPrice",), arguments.unit_price, child_columns, child.name)
            need(("discount",), arguments.discount, child_columns, child.name)
            need(("equals",), arguments.equals, columns, obj.name)

    def check_slas(self, document: _Document) -> None:
        seen: set[tuple[str, str | None]] = set()
        objects = {obj.name: obj for obj in document.schema_}
        for index, sla in enumerate(document.sla_properties):
            loc: Loc = ("slaProperties", index)
            owner = sla.element.partition(".")[0] if sla.element else None
            if (sla.kind, owner) in seen:
                self.fail((*loc, "property"), f"duplicate {sla.kind} SLA")
            seen.add((sla.kind, owner))
            if sla.kind == "lateWindow":
                if sla.unit != "d":
                    self.fail((*loc, "unit"), "lateWindow is counted in days (unit: d)")
                if sla.element is not None:
                    self.fail((*loc, "element"), "lateWindow applies to the dataset, not a column")
                continue
            if sla.element is None:
                self.fail(loc, "latency needs element: <table>.<timestamp column>")
                continue
            table, _, column = sla.element.partition(".")
            obj = objects.get(table)
            prop = next((p for p in obj.properties if p.name == column), None) if obj else None
            if obj is None or prop is None:
                self.fail(
                    (*loc, "element"), f"unknown column {sla.element!r} (want <table>.<column>)"
                )
            elif prop.logical_type not in _TIMES:
                self.fail(
                    (*loc, "element"), f"{sla.element!r} is {prop.logical_type}, not a timestamp"
                )


def _to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
