"""Loading contracts: parse, validate against the model, check, build the :class:`Contract`."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from lakehouse_assets.contracts.checker import (
    _Checker,
)
from lakehouse_assets.contracts.document import (
    _Document,
)
from lakehouse_assets.contracts.errors import (
    ContractError,
    Problem,
)
from lakehouse_assets.contracts.model import (
    Contract,
)
from lakehouse_assets.contracts.yaml_lines import (
    _compose,
    _describe,
    _locate,
    _render,
)


def load_contract(path: Path | str) -> Contract:
    """Load and validate one contract file.

    Raises:
        ContractError: naming the file, the line, the key and the problem, for YAML
            syntax, unknown or missing keys, wrong types and values, and semantic
            problems (unknown columns in rules and keys, duplicate columns or rule ids,
            invalid regular expressions, minimum above maximum, unknown built-ins).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(path, [Problem(None, "<file>", "does not exist")]) from None
    data, lines = _compose(path, text)
    if not isinstance(data, dict):
        raise ContractError(path, [Problem(1, "<root>", "the top level must be a mapping")])
    try:
        document = _Document.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(
                _locate(lines, tuple(error["loc"])), _render(tuple(error["loc"])), _describe(error)
            )
            for error in exc.errors()
        ]
        raise ContractError(path, problems) from None
    checker = _Checker(path, lines)
    checker.check(document)
    if checker.problems:
        raise ContractError(path, checker.problems)
    return Contract(path, document, checker.builtin_arguments)


def load_contracts(directory: Path | str) -> dict[str, Contract]:
    """Every ``*.yaml`` contract in ``directory``, keyed by dataset name."""
    contracts: dict[str, Contract] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        contract = load_contract(path)
        contracts[contract.dataset] = contract
    return contracts
