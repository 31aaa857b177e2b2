"""A PNG of the running dashboard, taken in headless Chromium once its charts are drawn,
and the figures its tables show (read off the page).

Chromium is driven exactly as for the Dagster UI's screenshots
(:mod:`lakehouse_dev.screenshots`: Debian's package, nothing reaching past loopback).
Run as ``python -m lakehouse_dev.dashboard.screenshot [--url URL] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import ViewportSize

from lakehouse_dev.screenshots import (
    RENDER_TIMEOUT_SECONDS,
    ScreenshotError,
    _browser_page,
    _open,
    _settle,
    _wait,
)
from resources.settings import PROJECT_ROOT

DEFAULT_URL = "http://127.0.0.1:8501"
DEFAULT_OUT = PROJECT_ROOT / ".lakehouse" / "screenshots" / "dashboard.png"
#: The containers (``st.container(key=...)``) whose tables hold the page's figures.
TABLES = ("freshness", "latest_day", "top_customers", "quarantine_rates")
VIEWPORT = ViewportSize(width=1600, height=1900)

#: Drawn once the app has finished its run (no "running" status), every chart has
#: painted a non-empty canvas or SVG, and no panel says it has no data yet (unless
#: ``[allowEmpty]``). Answers each keyed table as a list of rows of cell texts.
_DRAWN = """
([tables, charts, allowEmpty]) => {
  if (document.querySelector('[data-testid="stStatusWidget"]')) {
    return null;
  }
  const painted = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .filter((chart) => [...chart.querySelectorAll('canvas, svg.marks')]
      .some((el) => el.getBoundingClientRect().width > 0));
  if (painted.length < charts) {
    return null;
  }
  if (!allowEmpty && document.querySelector('[data-testid="stAlert"]')) {
    return null;
  }
  const read = (key) => {
    const table = document.querySelector(`.st-key-${key} table`);
    if (!table) {
      return null;
    }
    return [...table.querySelectorAll('tr')].map((row) =>
      [...row.querySelectorAll('th, td')].map((cell) => cell.innerText.trim()));
  };
  const found = Object.fromEntries(tables.map((key) => [key, read(key)]));
  return Object.values(found).every((rows) => rows !== null) ? found : null;
}
"""


@dataclass(frozen=True)
class DashboardView:
    """The saved PNG and each keyed table's rows (the header row first)."""

    path: Path
    tables: dict[str, list[list[str]]]


def screenshot_dashboard(
    url: str = DEFAULT_URL,
    out: Path = DEFAULT_OUT,
    *,
    charts: int = 3,
    tables: Sequence[str] = TABLES,
    timeout: float = RENDER_TIMEOUT_SECONDS,
) -> DashboardView:
    """Open the dashboard, wait until ``charts`` charts are painted and ``tables`` are
    shown, save the full page to ``out`` and read the tables."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with _browser_page() as page:
        # Streamlit scrolls inside its own container: the whole page must fit the window.
        page.set_viewport_size(VIEWPORT)
        _open(page, url, "dashboard", timeout)
        shown = _wait(page, "dashboard", _DRAWN, [list(tables), charts, False], timeout, out)
        _settle(page)
        page.screenshot(path=str(out))
    return DashboardView(out, shown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        view = screenshot_dashboard(args.url, args.out)
    except ScreenshotError as exc:
        print(f"dashboard screenshot: {exc}", file=sys.stderr)
        return 1
    print(view.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
