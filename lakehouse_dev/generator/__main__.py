"""``python -m lakehouse_dev.generator``: the ``lakehouse-events`` command line."""

import sys

from lakehouse_dev.generator.cli import main

sys.exit(main())
