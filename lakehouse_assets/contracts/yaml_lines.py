"""YAML with line numbers: pydantic error locations mapped back to the nodes they came from."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lakehouse_assets.contracts.errors import (
    ContractError,
    Loc,
    Problem,
)


def _compose(path: Path, text: str) -> tuple[Any, dict[Loc, int]]:
    """Parse ``text`` and map every key path (pydantic ``loc``) to its 1-based line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ContractError(path, [Problem(1, "<root>", "the file is empty")])
        lines: dict[Loc, int] = {}
        _index(path, node, (), lines)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = f"not valid YAML: {exc.problem or exc.context}"
        if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            # An unclosed bracket or quote is noticed lines later; say where it opened.
            reason += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        raise ContractError(path, [Problem(line, "<yaml>", reason)]) from None
    finally:
        loader.dispose()


def _index(path: Path, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise ContractError(
                    path,
                    [Problem(key_node.start_mark.line + 1, _render((*loc, key)), "duplicate key")],
                )
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _index(path, value_node, (*loc, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _index(path, item, (*loc, position), lines)


def _render(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "<root>"


def _locate(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _describe(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    value = error.get("input")
    shown = "" if isinstance(value, Mapping | list) else f" (got {value!r})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message}{shown}"
