"""Contract patterns for java.util.regex: a Java match must imply a Python ``re.search`` match.

The Java certifier applies a contract's ``pattern`` rules only when the pattern can be
re-emitted from Python's own parse tree into a safe subset of Java's dialect
(:func:`_java_regex`); any other pattern leaves its rows to the Python reference.
"""

from __future__ import annotations

import re
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
    out: list[str] = []
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            out.append(f"\\x{{{av:X}}}")
        elif name == "NOT_LITERAL":
            out.append(f"[^\\x{{{av:X}}}]")
        elif name == "ANY":
            out.append(".")
        elif name == "IN":
            members: list[str] = []
            negate = False
            for member_op, member_av in av:
                member = str(member_op)
                if member == "NEGATE":
                    negate = True
                elif member == "LITERAL":
                    members.append(f"\\x{{{member_av:X}}}")
                elif member == "RANGE":
                    members.append(f"\\x{{{member_av[0]:X}}}-\\x{{{member_av[1]:X}}}")
                elif member == "CATEGORY" and str(member_av) in _CATEGORIES:
                    members.append(_CATEGORIES[str(member_av)])
                else:
                    return None
            if negate and any(str(m_op) == "CATEGORY" for m_op, _ in av):
                return None
            out.append(("[^" if negate else "[") + "".join(members) + "]")
        elif name == "BRANCH":
            branches = [_emit(list(branch)) for branch in av[1]]
            if any(branch is None for branch in branches):
                return None
            out.append("(?:" + "|".join(b for b in branches if b is not None) + ")")
        elif name == "SUBPATTERN":
            _, add_flags, del_flags, sub = av
            inner = _emit(list(sub))
            if add_flags or del_flags or inner is None:
                return None
            out.append(f"(?:{inner})")
        elif name == "ATOMIC_GROUP":
            inner = _emit(list(av))
            if inner is None:
                return None
            out.append(f"(?>{inner})")
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = av
            inner = _emit(list(sub))
            if inner is None:
                return None
            upper = "" if high == _maxrepeat() else str(high)
            suffix = {"MAX_REPEAT": "", "MIN_REPEAT": "?", "POSSESSIVE_REPEAT": "+"}[name]
            out.append(f"(?:{inner}){{{low},{upper}}}{suffix}")
        elif name == "AT":
            anchors = {
                "AT_BEGINNING": "^",
                "AT_END": "$",
                "AT_BEGINNING_STRING": "\\A",
                "AT_END_STRING": "\\z",
            }
            if str(av) not in anchors:
                return None
            out.append(anchors[str(av)])
        else:
            return None
    return "".join(out)


def _maxrepeat() -> int:
    import re._constants as sre_constants

    return int(sre_constants.MAXREPEAT)
