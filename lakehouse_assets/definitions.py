"""The Definitions object that workspace.yaml loads: the lakehouse's table of contents.

Each domain sub-package contributes its assets, checks, sensors, schedules and
jobs; resources come from one place (:func:`resources.build_resources`) for the
environment selected by ``LAKEHOUSE_ENV``.
"""

from __future__ import annotations

import dagster as dg

from resources.environments import build_resources

defs = dg.Definitions(
    resources=build_resources(),
)
