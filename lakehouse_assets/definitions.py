"""The Definitions object that workspace.yaml loads: the lakehouse's table of contents.

Each layer contributes the assets, checks, sensors, schedules and jobs that its
factories make from the configured datasets; resources come from one place
(:func:`resources.environments.build_resources`) for the environment selected by
``LAKEHOUSE_ENV``.
"""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.bronze import bronze_definitions
from resources.environments import build_resources
from resources.settings import get_settings

settings = get_settings()

defs = dg.Definitions.merge(
    bronze_definitions(settings),
    dg.Definitions(resources=build_resources(settings)),
)
