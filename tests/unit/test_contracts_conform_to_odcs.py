"""Every contract in contracts/ is an ODCS v3 document, checked against the official JSON Schema.

The schema is the one shipped in the ``open-data-contract-standard`` package (the
ODCS project's own ``schema.json``), not a copy. Our contracts use a few extensions
(see :mod:`lakehouse_assets.contracts`) that the official schema rejects as unknown
keys; :func:`to_standard` moves exactly those into the standard's own extension
points (``customProperties`` and ``type: custom`` quality rules) before validating,
so any *other* deviation - a typo, a key ODCS does not know, a wrong type - fails
here, with the file and line it is on.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft201909Validator
from jsonschema.exceptions import ValidationError, best_match

from lakehouse_assets.contracts.errors import Loc
from lakehouse_assets.contracts.yaml_lines import _compose, _locate, _render

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
CONTRACTS = sorted(CONTRACTS_DIR.glob("*.yaml"))

#: ``engine`` of the ``type: custom`` rules our own code evaluates.
ENGINE = "lakehouse"

_THRESHOLDS = (
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
)


def _odcs_schema() -> dict[str, Any]:
    resource = files("open_data_contract_standard").joinpath("schema.json")
    return json.loads(resource.read_text(encoding="utf-8"))


VALIDATOR = Draft201909Validator(_odcs_schema())


def _custom(holder: dict[str, Any], name: str, value: Any) -> None:
    holder.setdefault("customProperties", []).append({"property": name, "value": value})


def _quality(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        if "metric" in rule or "type" in rule:
            continue  # a standard library / sql / custom rule, left as written
        if "rule" in rule:  # extension: a named built-in check with its arguments
            implementation = {"rule": rule.pop("rule"), "arguments": rule.pop("arguments", {})}
        else:  # extension: a threshold on the column's values, without a metric
            implementation = {key: rule.pop(key) for key in _THRESHOLDS if key in rule}
        if implementation:
            rule.update(type="custom", engine=ENGINE, implementation=implementation)


def _element(element: dict[str, Any]) -> None:
    """A schema object, a property or an array's ``items``, recursively."""
    options = element.get("logicalTypeOptions")
    if isinstance(options, dict) and "enum" in options:
        _custom(element, "enum", options.pop("enum"))
    if "sequenceColumn" in element:
        _custom(element, "sequenceColumn", element.pop("sequenceColumn"))
    _quality(element.get("quality", []))
    for child in element.get("properties", []):
        _element(child)
    if isinstance(element.get("items"), dict):
        _element(element["items"])


def to_standard(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with our extensions moved to ODCS extension points; nothing else changes."""
    document = copy.deepcopy(document)
    for schema_object in document.get("schema", []):
        _element(schema_object)
    for sla in document.get("slaProperties", []):
        if "severity" in sla:
            _custom(sla, "severity", sla.pop("severity"))
    return document


def _problems(error: ValidationError) -> list[tuple[Loc, str]]:
    """``(loc, reason)`` of one error; an unknown key is reported at the key itself."""
    cause = best_match([error])  # the innermost reason of an allOf / if-then failure
    loc = tuple(cause.absolute_path)
    if cause.validator in ("additionalProperties", "unevaluatedProperties"):
        unknown = [key for key in cause.instance if repr(key) in cause.message]
        return [((*loc, key), f"unknown key {key!r}") for key in unknown]
    return [(loc, cause.message)]


def _violations(path: Path, text: str) -> list[str]:
    document, lines = _compose(path, text)
    found = {
        problem
        for error in VALIDATOR.iter_errors(to_standard(document))
        for problem in _problems(error)
    }
    return [
        f"{path}:{_locate(lines, loc)}: {_render(loc)}: {reason}"
        for loc, reason in sorted(found, key=lambda problem: _locate(lines, problem[0]) or 0)
    ]


def test_the_schema_is_the_official_odcs_v3_schema() -> None:
    schema = VALIDATOR.schema
    Draft201909Validator.check_schema(schema)
    assert schema["title"] == "Open Data Contract Standard (ODCS)"
    assert "v3.1.0" in schema["properties"]["apiVersion"]["enum"]
    assert schema["additionalProperties"] is False


def test_there_are_contracts_to_check() -> None:
    assert CONTRACTS, f"no *.yaml in {CONTRACTS_DIR}"


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda path: path.name)
def test_contract_conforms_to_odcs(path: Path) -> None:
    problems = _violations(path, path.read_text(encoding="utf-8"))
    assert not problems, "not valid ODCS:\n" + "\n".join(problems)


def test_only_the_declared_extensions_are_moved() -> None:
    document: dict[str, Any] = {
        "schema": [
            {
                "name": "t",
                "sequenceColumn": "version",
                "properties": [
                    {"name": "s", "logicalType": "string", "logicalTypeOptions": {"enum": ["a"]}},
                    {"name": "n", "logicalType": "integer", "quality": [{"mustBe": 1}]},
                ],
                "quality": [{"metric": "rowCount", "mustBe": 1}, {"rule": "x", "arguments": {}}],
            }
        ],
        "slaProperties": [{"property": "latency", "value": 1, "severity": "error"}],
    }
    standard = to_standard(document)
    table = standard["schema"][0]
    assert table["customProperties"] == [{"property": "sequenceColumn", "value": "version"}]
    assert table["properties"][0]["customProperties"] == [{"property": "enum", "value": ["a"]}]
    assert table["properties"][0]["logicalTypeOptions"] == {}
    assert table["properties"][1]["quality"] == [
        {"type": "custom", "engine": ENGINE, "implementation": {"mustBe": 1}}
    ]
    assert table["quality"][0] == {"metric": "rowCount", "mustBe": 1}  # standard: untouched
    assert table["quality"][1]["implementation"] == {"rule": "x", "arguments": {}}
    assert standard["slaProperties"][0]["customProperties"] == [
        {"property": "severity", "value": "error"}
    ]
    assert "sequenceColumn" in document["schema"][0]  # the input is not modified


@pytest.mark.parametrize(
    ("original", "broken", "reason"),
    [
        ("        required: true\n", "        requried: true\n", "unknown key 'requried'"),
        ("status: active\n", "status: active\nowner: sales\n", "unknown key 'owner'"),
        ("    unit: h\n", "    unit: h\n    window: 1\n", "unknown key 'window'"),
        ("        required: true\n", "        required: yes please\n", "is not of type 'boolean'"),
        ("          minLength: 1\n", "          minLen: 1\n", "unknown key 'minLen'"),
    ],
)
def test_a_deviation_from_odcs_is_reported_with_its_line(
    original: str, broken: str, reason: str
) -> None:
    path = CONTRACTS_DIR / "plain.yaml"
    text = path.read_text(encoding="utf-8")
    assert original in text
    text = text.replace(original, broken, 1)
    line = text[: text.index(broken)].count("\n") + broken.count("\n")
    problems = _violations(path, text)
    assert problems, "the broken contract passed"
    assert any(f"{path}:{line}:" in problem and reason in problem for problem in problems), (
        f"expected line {line} with {reason!r}, got:\n" + "\n".join(problems)
    )
