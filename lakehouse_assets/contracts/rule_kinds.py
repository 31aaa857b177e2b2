"""Every kind of contract rule, declared once, and the check that each engine implements it.

A contract's rules compile (:meth:`Contract.row_rules`, :meth:`Contract.table_rules`)
to :class:`~lakehouse_assets.contracts.model.RowRule` and
:class:`~lakehouse_assets.contracts.model.TableRule` values whose ``kind`` names an
entry of :data:`RULE_KINDS`. A kind says which *subjects* it applies to:

``payload``     each record's raw JSON payload (a ``physicalType: topic`` object), before
                it is typed; a failing ``error`` rule sends the record to quarantine;
``table_rows``  each row of a typed silver table (``physicalType: table``): the
                ``contract_row_rules`` asset check;
``table``       a partition (or the whole) of a silver table: the other asset checks.

Engines evaluate the rules of a subject:

========================================================  ==========  =====================
engine                                                    subject     where
========================================================  ==========  =====================
reference evaluator (the specification, plain Python)     payload     ``silver.validation``
JVM certifier (certifies the provably valid rows in one   payload     ``silver.spark_validation``
pass, or defers a row to the reference evaluator)                     + ``PayloadCertifier.java``
Arrow evaluator                                           table_rows  ``silver.check_evaluators``
asset-check builders                                      table       ``silver.table_checks``
========================================================  ==========  =====================

Each engine declares its implementations with :func:`implement`, at import: a kind of
its subject without an implementation, or an implementation of a kind that is not
declared here (a typo, a removed kind), fails the import with :class:`RuleKindError`,
so the definitions never load half-able to evaluate a contract. Adding a rule kind is
one entry in :data:`RULE_KINDS` (plus, for a built-in, the model of its ``arguments``
in :mod:`~lakehouse_assets.contracts.document`), then one implementation per engine
of its subjects. An accelerating engine (the JVM certifier) may implement a kind with
:data:`DEFER`: rows under such a rule are never certified there and the reference
evaluator decides them, so the verdict is unchanged, only slower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, TypeVar

from lakehouse_assets.contracts.document import (
    BuiltinArguments,
    ChildLinesSumTo,
    LinesSumTo,
    SumEquals,
)

Subject = Literal["payload", "table_rows", "table"]

_ROWS: Final[frozenset[Subject]] = frozenset({"payload", "table_rows"})


class RuleKindError(TypeError):
    """An engine does not implement exactly the rule kinds declared for its subject."""


@dataclass(frozen=True)
class RuleKind:
    """One kind of contract rule: what it checks and on which subjects."""

    name: str
    subjects: frozenset[Subject]
    summary: str
    arguments: type[BuiltinArguments] | None = None
    """For a built-in (``rule: <name>`` in a contract): the model of its ``arguments``."""

    @property
    def level(self) -> Literal["row", "table"]:
        """``row``: judged per row (or record); ``table``: per partition or table."""
        return "table" if "table" in self.subjects else "row"


def _kinds(*kinds: RuleKind) -> Mapping[str, RuleKind]:
    return MappingProxyType({kind.name: kind for kind in kinds})


#: Every rule kind, in the order checks and specs list them.
RULE_KINDS: Final[Mapping[str, RuleKind]] = _kinds(
    RuleKind(
        "parseable",
        frozenset({"payload"}),
        "the payload is UTF-8 JSON holding an object",
    ),
    RuleKind("required", _ROWS, "the column is present and not null"),
    RuleKind(
        "type",
        frozenset({"payload"}),
        "the value has the column's type (tables are typed by their schema)",
    ),
    RuleKind("allowed_values", _ROWS, "the value is one of a list"),
    RuleKind("pattern", _ROWS, "the value matches a regular expression (re.search)"),
    RuleKind("comparison", _ROWS, "the value compares to a bound (or lies between two)"),
    RuleKind("length", _ROWS, "the length of a string or array compares to a bound"),
    RuleKind("sum_equals", _ROWS, "columns add up to another column", SumEquals),
    RuleKind(
        "lines_sum_to",
        frozenset({"payload"}),
        "an array's lines (quantity x price x (1 - discount)) add up to a column",
        LinesSumTo,
    ),
    RuleKind("unique", frozenset({"table"}), "no two rows share the columns' values"),
    RuleKind("row_count", frozenset({"table"}), "a partition's row count is within bounds"),
    RuleKind("freshness", frozenset({"table"}), "the newest value is at most a delay old"),
    RuleKind(
        "child_lines_sum_to",
        frozenset({"table"}),
        "another table's lines with the same key add up to a column",
        ChildLinesSumTo,
    ),
)

#: Built-in rules a contract names with ``rule:``, with the model of their ``arguments``.
BUILTIN_RULES: Final[Mapping[str, type[BuiltinArguments]]] = MappingProxyType(
    {name: kind.arguments for name, kind in RULE_KINDS.items() if kind.arguments is not None}
)


class Deferred:
    """The type of :data:`DEFER`."""

    def __repr__(self) -> str:
        return "DEFER"


#: An accelerating engine's implementation of a kind it leaves to the reference evaluator.
DEFER: Final = Deferred()

T = TypeVar("T")


def kinds_for(subject: Subject) -> list[str]:
    """The names of the kinds that apply to ``subject``, in declaration order."""
    return [name for name, kind in RULE_KINDS.items() if subject in kind.subjects]


def implement(engine: str, subject: Subject, implementations: Mapping[str, T]) -> Mapping[str, T]:
    """``implementations`` (kind name -> the engine's evaluator), checked to cover exactly
    the kinds of ``subject``.

    Raises:
        RuleKindError: naming the engine and the missing or unknown kinds.
    """
    expected = kinds_for(subject)
    missing = [name for name in expected if name not in implementations]
    unknown = sorted(set(implementations) - set(expected))
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"no implementation of {', '.join(missing)}")
        if unknown:
            problems.append(f"implementations of kinds it cannot see: {', '.join(unknown)}")
        raise RuleKindError(
            f"{engine} ({subject} rules): {'; '.join(problems)}. Rule kinds are declared in "
            "lakehouse_assets/contracts/rule_kinds.py; every engine of a kind's subjects "
            "implements it."
        )
    return MappingProxyType({name: implementations[name] for name in expected})


def rule_kind(name: str) -> RuleKind:
    """The declared kind ``name``.

    Raises:
        RuleKindError: ``name`` is not declared.
    """
    try:
        return RULE_KINDS[name]
    except KeyError:
        raise RuleKindError(
            f"unknown rule kind {name!r} (known: {', '.join(RULE_KINDS)})"
        ) from None
