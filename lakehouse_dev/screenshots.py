"""``make screenshots``: PNGs of a running Dagster UI (``make dev``), taken in headless Chromium.

Three pages, each saved once it shows its data, never after a fixed wait:

- ``asset_graph.png``: the lineage of a silver table, from its bronze dataset through
  gold to maintenance, every node with its latest run, checks and partitions;
- ``asset_plots.png``: that table's numeric metadata plotted per partition (the
  asset's Overview, Metadata section, "Plots");
- ``check_history.png``: one of its checks' execution history (Checks tab, the check,
  "Execution history").

By default the table is the first silver asset that has been materialised and carries
the reconciliation check, and the check is the reconciliation. A page that does not
render within the timeout fails with its name and address, and what was on the
screen is saved next to where its PNG would be (``*-not-rendered.png``).

Playwright drives Debian's ``chromium`` package (``make chromium`` installs it), never
a browser download of its own. Run as ``python -m lakehouse_dev.screenshots [--url URL]
[--out DIR] [--asset silver/<table>] [--check NAME]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

from lakehouse_assets.silver.assets import RECONCILIATION_CHECK, SILVER_GROUP
from resources.settings import PROJECT_ROOT

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_OUT = PROJECT_ROOT / ".lakehouse" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and nothing that reaches past loopback: without the background-networking
#: switches Chromium keeps calling Google's services, which a closed network refuses.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1920, "height": 1200}
RENDER_TIMEOUT_SECONDS = 60.0
#: Set before any page script runs: the UI's "Join the Dagster community" dialog counts
#: as dismissed in this browser (dismissing it in the UI would write to the instance).
_BROWSER_STATE = "window.localStorage.setItem('communityNux', JSON.stringify('1'));"


class ScreenshotError(RuntimeError):
    """A page that could not be reached or did not show its data in time."""


@dataclass(frozen=True)
class Screenshot:
    """One saved page, and what the page showed when it was taken."""

    page: str
    url: str
    path: Path
    #: Read off the rendered page: the graph's node titles (groups and assets), the
    #: plotted metadata labels, or the check's name followed by each execution's result.
    shown: tuple[str, ...]


_ASSETS = """
{ assetNodes {
    assetKey { path } groupName
    repository { name location { name } }
    assetMaterializations(limit: 1) { timestamp }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
} }
"""


def _graphql(url: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError) as exc:
        raise ScreenshotError(
            f"no Dagster webserver answers at {url} ({exc}); start it with `make dev` "
            "(DAGSTER_PORT for another port) or pass --url"
        ) from exc
    if answer.get("errors"):
        raise ScreenshotError(f"the webserver at {url} refused the query: {answer['errors']}")
    return dict(answer["data"])


def _asset_nodes(url: str) -> list[dict[str, Any]]:
    return list(_graphql(url, _ASSETS)["assetNodes"])


def default_asset(nodes: Sequence[dict[str, Any]], check: str) -> str:
    """The first materialised silver asset (by key) that carries ``check``."""
    candidates = sorted(
        "/".join(node["assetKey"]["path"])
        for node in nodes
        if node["groupName"] == SILVER_GROUP
        and node["assetMaterializations"]
        and check in {c["name"] for c in node["assetChecksOrError"].get("checks", [])}
    )
    if not candidates:
        raise ScreenshotError(
            f"no materialised {SILVER_GROUP} asset carries the check {check!r}: run the "
            "pipeline first (`make demo`, or produce events and let the sensors land them)"
        )
    return candidates[0]


def _expanded_groups(nodes: Sequence[dict[str, Any]]) -> str:
    """The graph's ``expanded`` parameter: every group open, under both of the ids the UI
    gives a group (global, or per code location when that feature flag is on)."""
    ids = set()
    for node in nodes:
        repository = node["repository"]
        ids.add(f"global@global:{node['groupName']}")
        ids.add(f"{repository['name']}@{repository['location']['name']}:{node['groupName']}")
    return ",".join(sorted(ids))


@contextlib.contextmanager
def _browser_page() -> Iterator[Page]:
    if not CHROMIUM.exists():
        raise ScreenshotError(f"Chromium is not installed at {CHROMIUM}: run `make chromium`")
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,  # a fresh profile: nothing carried over from an earlier session
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport=VIEWPORT,  # type: ignore[arg-type]
        )
        try:
            context.add_init_script(_BROWSER_STATE)
            yield context.new_page()
        finally:
            context.close()


#: The graph is drawn once the asset's own node shows a link to its latest run (the live
#: data has arrived). Answers the title of every node drawn.
_GRAPH_DRAWN = """
([name]) => {
  const nodes = [...document.querySelectorAll('svg foreignObject')];
  // A foreignObject is an SVG element: its text is its HTML child's.
  const text = (node) => (node.firstElementChild ? node.firstElementChild.innerText : '');
  const title = (node) => text(node).trim().split('\\n')[0].trim();
  const drawn = nodes.some((n) => title(n) === name && n.querySelector('a[href*="/runs/"]'));
  return drawn ? nodes.map(title).filter(Boolean) : null;
}
"""

#: The plots are drawn once every numeric metadata label has its chart canvas (or the
#: asset has nothing numeric to plot). Answers the labels, or ``{empty: true}``.
_PLOTS_EMPTY = """
() => document.body.innerText.includes('Asset plots are automatically generated by metadata')
"""

#: The plots are drawn once a canvas has a size; answers their labels. The empty state
#: (:data:`_PLOTS_EMPTY`) also shows for a moment while a partitioned asset's partition
#: keys load (its events query waits for them), so it is not an answer yet.
_PLOTS_DRAWN = """
() => {
  const labels = [...document.querySelectorAll('canvas')]
    .filter((canvas) => canvas.width > 0 && canvas.height > 0)
    .map((canvas) => canvas.closest('div[style*="width: 100%"]'))
    .map((plot) => plot && plot.firstElementChild && plot.firstElementChild.innerText.trim())
    .filter(Boolean);
  return labels.length ? {labels} : null;
}
"""

#: The history is shown once the panel's heading names the check and its table holds an
#: evaluation (passed or failed). Answers the check's name, then each row's result.
_HISTORY_SHOWN = """
([check]) => {
  const heading = [...document.querySelectorAll('[role="img"][aria-label="asset_check"]')]
    .map((icon) => icon.nextElementSibling && icon.nextElementSibling.innerText.trim())
    .find((text) => text === check);
  const table = [...document.querySelectorAll('table')]
    .find((t) => t.innerText.includes('Evaluation result'));
  if (!heading || !table) {
    return null;
  }
  const results = [...table.querySelectorAll('tbody tr')]
    .map((row) => row.querySelector('td'))
    .map((cell) => (cell ? cell.innerText.trim() : ''))
    .filter(Boolean);
  return results.some((r) => r === 'Passed' || r === 'Failed') ? [heading, ...results] : null;
}
"""

_NEXT_FRAMES = (
    "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
)


def _wait(page: Page, what: str, script: str, arg: Any, timeout: float, path: Path) -> Any:
    """What ``script`` answers once truthy; the page's name, address and a picture of
    what was there when it does not get there in ``timeout`` seconds."""
    try:
        return page.wait_for_function(script, arg=arg, timeout=timeout * 1000).json_value()
    except PlaywrightError as exc:
        shown = path.with_name(f"{path.stem}-not-rendered.png")
        page.screenshot(path=str(shown))
        reason = str(exc).splitlines()[0]
        raise ScreenshotError(
            f"the {what} did not render within {timeout:.0f}s at {page.url} ({reason}); "
            f"what the page showed is in {shown}"
        ) from exc


def _settle(page: Page) -> None:
    """Let the last data requests land and the next two frames paint."""
    # The UI polls: an idle moment may not come, and the data is already shown.
    with contextlib.suppress(PlaywrightError):
        page.wait_for_load_state("networkidle", timeout=10_000)
    page.evaluate(_NEXT_FRAMES)


def _open(page: Page, url: str, what: str, timeout: float) -> None:
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
    except PlaywrightError as exc:
        raise ScreenshotError(f"the {what} at {url} did not load: {exc}") from exc


def asset_graph(
    page: Page, url: str, asset: str, groups: str, out: Path, timeout: float
) -> Screenshot:
    """The lineage of ``asset``: one step up- and downstream, every group open."""
    selection = urllib.parse.quote(f'+key:"{asset}"+', safe="")
    address = f"{url}/asset-groups~{selection}/?expanded={urllib.parse.quote(groups, safe='')}"
    path = out / "asset_graph.png"
    what = f"asset graph around {asset}"
    _open(page, address, what, timeout)
    titles = _wait(page, what, _GRAPH_DRAWN, [asset.rsplit("/", maxsplit=1)[-1]], timeout, path)
    _settle(page)
    page.screenshot(path=str(path))
    return Screenshot(what, address, path, tuple(dict.fromkeys(titles)))


def asset_plots(page: Page, url: str, asset: str, out: Path, timeout: float) -> Screenshot:
    """The asset's numeric metadata per partition: Overview, Metadata, "Plots"."""
    address = f"{url}/assets/{asset}?view=overview"
    path = out / "asset_plots.png"
    what = f"plots of {asset}"
    _open(page, address, what, timeout)
    try:
        page.get_by_role("button", name="Plots").click(timeout=timeout * 1000)
    except PlaywrightError as exc:
        raise ScreenshotError(f"the {what}: no Plots button at {address} ({exc})") from exc
    try:
        drawn = _wait(page, what, _PLOTS_DRAWN, None, timeout, path)
    except ScreenshotError as exc:
        if page.evaluate(_PLOTS_EMPTY):
            raise ScreenshotError(
                f"the {what}: {asset} has no numeric metadata to plot ({exc})"
            ) from exc
        raise
    # The Metadata section at the top, so the screen holds as many plots as it can.
    page.get_by_text("Metadata", exact=True).first.evaluate(
        "(heading) => heading.scrollIntoView({block: 'start'})"
    )
    _settle(page)
    page.screenshot(path=str(path))
    return Screenshot(what, address, path, tuple(drawn["labels"]))


def check_history(
    page: Page, url: str, asset: str, check: str, out: Path, timeout: float
) -> Screenshot:
    """The check's execution history: the asset's Checks tab, the check, "Execution history"."""
    query = urllib.parse.urlencode({"view": "checks", "checkDetail": check})
    address = f"{url}/assets/{asset}?{query}"
    path = out / "check_history.png"
    what = f"history of check {check} of {asset}"
    _open(page, address, what, timeout)
    try:
        page.get_by_role("tab", name="Execution history").click(timeout=timeout * 1000)
    except PlaywrightError as exc:
        raise ScreenshotError(f"the {what}: no Execution history tab ({exc})") from exc
    shown = _wait(page, what, _HISTORY_SHOWN, [check], timeout, path)
    _settle(page)
    page.screenshot(path=str(path))
    return Screenshot(what, address, path, tuple(shown))


def take_screenshots(
    url: str = DEFAULT_URL,
    out: Path = DEFAULT_OUT,
    asset: str | None = None,
    check: str = RECONCILIATION_CHECK,
    timeout: float = RENDER_TIMEOUT_SECONDS,
) -> list[Screenshot]:
    """Save the asset graph, ``asset``'s plots and ``check``'s history under ``out``."""
    url = url.rstrip("/")
    nodes = _asset_nodes(url)
    asset = asset or default_asset(nodes, check)
    out.mkdir(parents=True, exist_ok=True)
    with _browser_page() as page:
        return [
            asset_graph(page, url, asset, _expanded_groups(nodes), out, timeout),
            asset_plots(page, url, asset, out, timeout),
            check_history(page, url, asset, check, out, timeout),
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakehouse_dev.screenshots", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the webserver (default {DEFAULT_URL})")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where the PNGs go (default %(default)s)"
    )
    parser.add_argument(
        "--asset", help="a silver asset key, e.g. silver/plain (default: the first materialised)"
    )
    parser.add_argument(
        "--check",
        default=RECONCILIATION_CHECK,
        help="the check whose history to show (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=RENDER_TIMEOUT_SECONDS,
        help="seconds a page gets to show its data (default %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        shots = take_screenshots(args.url, args.out, args.asset, args.check, args.timeout)
    except ScreenshotError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    for shot in shots:
        print(f"{shot.path}  {shot.page}: {', '.join(shot.shown)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
