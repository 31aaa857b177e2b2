"""One registry of contract rule kinds, and every engine implements exactly its kinds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from lakehouse_assets.contracts import rule_kinds
from lakehouse_assets.contracts.loading import load_contracts
from lakehouse_assets.contracts.model import RowRule, TableRule
from lakehouse_assets.contracts.rule_kinds import (
    BUILTIN_RULES,
    DEFER,
    RULE_KINDS,
    RuleKindError,
    Subject,
    implement,
    kinds_for,
)
from lakehouse_assets.silver import check_evaluators, spark_validation, table_checks, validation

ROOT = Path(__file__).resolve().parents[2]
CERTIFIER = ROOT / "resources/spark/java/lakehouse/validation/PayloadCertifier.java"


def test_every_engine_implements_exactly_the_kinds_of_its_subject() -> None:
    engines: dict[Subject, list[Mapping[str, object]]] = {
        "payload": [validation._CHECKS, spark_validation._SPECS],
        "table_rows": [check_evaluators._FAILURES],
        "table": [table_checks.TABLE_CHECKS],
    }
    for subject, tables in engines.items():
        for table in tables:
            assert list(table) == kinds_for(subject), subject


def test_a_missing_or_unknown_implementation_fails_naming_the_engine_and_kinds() -> None:
    complete = dict.fromkeys(kinds_for("table"), lambda: None)
    assert list(implement("builders", "table", complete)) == kinds_for("table")

    missing = {k: v for k, v in complete.items() if k != "freshness"}
    with pytest.raises(
        RuleKindError, match=r"builders \(table rules\): no implementation of freshness"
    ):
        implement("builders", "table", missing)

    with pytest.raises(RuleKindError, match="kinds it cannot see: pattern"):
        implement("builders", "table", {**complete, "pattern": lambda: None})


def test_a_new_kind_is_one_entry_and_every_engine_of_its_subject_then_fails_to_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    added = rule_kinds.RuleKind("no_emoji", frozenset({"payload", "table_rows"}), "no emoji")
    monkeypatch.setattr(rule_kinds, "RULE_KINDS", {**RULE_KINDS, added.name: added})
    engines: list[tuple[Subject, Mapping[str, object]]] = [
        ("payload", validation._CHECKS),
        ("payload", spark_validation._SPECS),
        ("table_rows", check_evaluators._FAILURES),
    ]
    for subject, table in engines:
        with pytest.raises(RuleKindError, match="no implementation of no_emoji"):
            implement("engine", subject, dict(table))
    # The table-level engine does not see it.
    assert list(implement("builders", "table", dict(table_checks.TABLE_CHECKS)))


def test_builtins_are_the_kinds_with_an_arguments_model() -> None:
    assert set(BUILTIN_RULES) == {"sum_equals", "lines_sum_to", "child_lines_sum_to"}
    assert RULE_KINDS["child_lines_sum_to"].level == "table"
    assert RULE_KINDS["lines_sum_to"].level == "row"


def test_the_jvm_certifier_has_a_case_for_each_kind_it_is_sent() -> None:
    cases = set(re.findall(r'case "([a-z_]+)":', CERTIFIER.read_text(encoding="utf-8")))
    sent = {kind for kind, spec in spark_validation._SPECS.items() if spec is not DEFER}
    sent.discard("parseable")  # parsing precedes every rule: nothing is sent
    assert sent <= cases, sent - cases


def test_rules_name_a_declared_kind_of_their_level() -> None:
    with pytest.raises(RuleKindError, match="unknown rule kind 'regex'"):
        RowRule("x.regex", "", "error", "regex", "x")
    with pytest.raises(RuleKindError, match="'unique' is a table rule"):
        RowRule("x.unique", "", "error", "unique", "x")
    with pytest.raises(RuleKindError, match="arguments do not fit kind 'child_lines_sum_to'"):
        TableRule("lines", "", "error", "child_lines_sum_to")


def test_shipped_contracts_use_only_declared_kinds() -> None:
    for contract in load_contracts(ROOT / "contracts").values():
        for table in contract.tables:
            kinds = {r.kind for r in contract.row_rules(table)}
            kinds |= {r.kind for r in contract.table_rules(table)}
            assert kinds <= set(RULE_KINDS), (contract.dataset, table)
