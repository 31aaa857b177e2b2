"""``python -m benchmarks [bronze|bronze_days|silver|gold|cluster|maintenance|all] [options]``.

``bronze`` is :mod:`benchmarks.bronze_landing`, ``bronze_days``
:mod:`benchmarks.bronze_days`, ``silver`` :mod:`benchmarks.silver`,
``gold`` :mod:`benchmarks.gold`, ``cluster`` :mod:`benchmarks.cluster`, ``maintenance``
:mod:`benchmarks.maintenance` (default: all).
The options after the name go to the selected benchmark (see ``python -m benchmarks <name> --help``); with ``all`` they go to each
benchmark, so only the options all know (``--quick``, ``--repeat``, ``--days``,
``--end-date``, the generator shares, ``--seed``, ``--output``) can be given. Each
benchmark writes its section of ``benchmarks/results.json``. The exit status is the
worst of the benchmarks': 0 all targets met, 1 a target missed, 2 a benchmark could
not run, 130 interrupted.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence

from benchmarks import bronze_days, bronze_landing, cluster, gold, maintenance, silver
from benchmarks.common import raise_interrupt

BENCHMARKS: dict[str, Callable[[Sequence[str]], int]] = {
    "bronze": bronze_landing.main,
    "bronze_days": bronze_days.main,
    "silver": silver.main,
    "gold": gold.main,
    "cluster": cluster.main,
    "maintenance": maintenance.main,
}
#: Each benchmark's option parser, to reject bad options before any benchmark runs.
PARSERS: dict[str, Callable[[Sequence[str]], object]] = {
    "bronze": bronze_landing.parse_args,
    "bronze_days": bronze_days.parse_args,
    "silver": silver.parse_args,
    "gold": gold.parse_args,
    "cluster": cluster.parse_args,
    "maintenance": maintenance.parse_args,
}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = "all"
    if arguments and not arguments[0].startswith("-"):
        selected = arguments.pop(0)
        if selected not in (*BENCHMARKS, "all"):
            print(
                f"python -m benchmarks: unknown benchmark {selected!r}; choose one of "
                f"{', '.join(BENCHMARKS)} or all",
                file=sys.stderr,
            )
            return 2
    elif arguments and arguments[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    names = list(BENCHMARKS) if selected == "all" else [selected]
    signal.signal(signal.SIGTERM, raise_interrupt)
    if selected == "all":
        # Options that one of them rejects should fail before hours of measuring.
        for name in names:
            PARSERS[name](arguments)
    codes = []
    for name in names:
        code = BENCHMARKS[name](arguments)
        codes.append(code)
        if code in (2, 130):
            break
    return max(codes, key=lambda code: (code == 130, code))


if __name__ == "__main__":
    sys.exit(main())
