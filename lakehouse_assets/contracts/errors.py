"""Contract errors: every problem names the file, the line and the key."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

Loc = tuple[str | int, ...]


class Problem(NamedTuple):
    """One thing wrong with a contract: where (line, key) and why."""

    line: int | None
    key: str
    reason: str


class ContractError(ValueError):
    """A contract is invalid; the message names the file, the line, the key and the problem.

    ``problems`` lists every problem found (the message shows them all); ``line``,
    ``key`` and ``reason`` are those of the first.
    """

    def __init__(self, path: Path | str, problems: Sequence[Problem]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem(None, "<root>", "invalid")
        self.line, self.key, self.reason = first
        lines = [
            f"{self.path}:{problem.line or 1}: {problem.key}: {problem.reason}"
            for problem in self.problems
        ]
        super().__init__("\n".join(lines))
