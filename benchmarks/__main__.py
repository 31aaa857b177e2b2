"""``python -m benchmarks``: the bronze landing benchmark (see :mod:`benchmarks.bronze_landing`)."""

from __future__ import annotations

import sys

from benchmarks.bronze_landing import main

if __name__ == "__main__":
    sys.exit(main())
