"""Contract patterns for java.util.regex: a Java match must imply a Python ``re.search`` match.

The Java certifier applies a contract's ``pattern`` rules only when the pattern can be
re-emitted from Python's own parse tree into a safe subset of Java's dialect
(:func:`_java_regex`); any other pattern leaves its rows to the Python reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from resources.private_apis import parse_regex

if TYPE_CHECKING:
    pass


#: What a canonical number looks like (Python's repr may add an exponent).
_FLOAT_TEXT = r"\A-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\z"


def _java_regex(pattern: str) -> str | None:
    """``pattern`` rewritten for ``java.util.regex`` so that a Java match implies a
    Python ``re.search`` match; None when the pattern uses anything outside that
    safe subset (flags, lookarounds, word boundaries, back references, negated
    Unicode classes).

    The Python parse tree is re-emitted (every literal as ``\\x{…}``), so the two
    dialects' syntax differences never matter; ``(?d)`` (UNIX_LINES) gives ``.``
    and ``$`` Python's meaning; ``\\d``, ``\\w``, ``\\s`` become their ASCII subsets.
    """
    try:
        tree = parse_regex(pattern)
    except re.error:
        return None
    if tree.state.flags & ~re.UNICODE:
        return None
    body = _emit(list(tree))
    return None if body is None else "(?d)" + body


_CATEGORIES = {
    "CATEGORY_DIGIT": "0-9",
    "CATEGORY_WORD": "a-zA-Z0-9_",
    "CATEGORY_SPACE": " \\t\\n\\x0B\\f\\r",
}


def _emit(items: list[tuple[Any, Any]]) -> str | None:
    """Java regex text of parsed items (``None``: a construct with no exact translation)."""
    out: list[str] = []
    for op, av in items:
        emit = _EMITTERS.get(str(op))
        piece = emit(str(op), av) if emit is not None else None
        if piece is None:
            return None
        out.append(piece)
    return "".join(out)


def _class_member(member: str, av: Any) -> str | None:
    if member == "LITERAL":
        return f"\\x{{{av:X}}}"
    if member == "RANGE":
        return f"\\x{{{av[0]:X}}}-\\x{{{av[1]:X}}}"
    if member == "CATEGORY":
        return _CATEGORIES.get(str(av))
    return None


def _emit_in(name: str, av: Any) -> str | None:
    members = [(str(op), value) for op, value in av]
    negate = any(op == "NEGATE" for op, _ in members)
    if negate and any(op == "CATEGORY" for op, _ in members):
        return None
    texts = [_class_member(op, value) for op, value in members if op != "NEGATE"]
    if any(text is None for text in texts):
        return None
    return ("[^" if negate else "[") + "".join(t for t in texts if t is not None) + "]"


def _emit_branch(name: str, av: Any) -> str | None:
    branches = [_emit(list(branch)) for branch in av[1]]
    if any(branch is None for branch in branches):
        return None
    return "(?:" + "|".join(b for b in branches if b is not None) + ")"


def _emit_subpattern(name: str, av: Any) -> str | None:
    _, add_flags, del_flags, sub = av
    inner = _emit(list(sub))
    return None if add_flags or del_flags or inner is None else f"(?:{inner})"


def _emit_atomic(name: str, av: Any) -> str | None:
    inner = _emit(list(av))
    return None if inner is None else f"(?>{inner})"


def _emit_repeat(name: str, av: Any) -> str | None:
    low, high, sub = av
    inner = _emit(list(sub))
    if inner is None:
        return None
    upper = "" if high == _maxrepeat() else str(high)
    suffix = {"MAX_REPEAT": "", "MIN_REPEAT": "?", "POSSESSIVE_REPEAT": "+"}[name]
    return f"(?:{inner}){{{low},{upper}}}{suffix}"


_ANCHORS = {
    "AT_BEGINNING": "^",
    "AT_END": "$",
    "AT_BEGINNING_STRING": "\\A",
    "AT_END_STRING": "\\z",
}

#: Per opcode of Python's regex parser: its exact Java form.
_EMITTERS: dict[str, Callable[[str, Any], str | None]] = {
    "LITERAL": lambda name, av: f"\\x{{{av:X}}}",
    "NOT_LITERAL": lambda name, av: f"[^\\x{{{av:X}}}]",
    "ANY": lambda name, av: ".",
    "IN": _emit_in,
    "BRANCH": _emit_branch,
    "SUBPATTERN": _emit_subpattern,
    "ATOMIC_GROUP": _emit_atomic,
    "MAX_REPEAT": _emit_repeat,
    "MIN_REPEAT": _emit_repeat,
    "POSSESSIVE_REPEAT": _emit_repeat,
    "AT": lambda name, av: _ANCHORS.get(str(av)),
}


def _maxrepeat() -> int:
    import re._constants as sre_constants

    return int(sre_constants.MAXREPEAT)
