"""The HTML report opened in a real browser: headless Chromium driven by Playwright.

The page must render from a file:// URL with no console error and no
network request, its graph and timeline must be drawn (non-zero size, one
node per task or group and one bar per attempt), and its table must sort
and filter. Debian's `chromium` package is the browser (.ci/run installs
it); Playwright only drives it and never downloads one. Skipped, saying
why, only where either is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from conftest import Project
from test_cli_report import ATTEMPTS, GROUPS, TASKS, make_mixed_project

CHROMIUM = os.environ.get("FLOWMAKE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and shutil.which("chromium") is None:
    pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def short_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short TMPDIR for the browser: Chromium's socket path there must fit in 108 bytes,
    which a pytest tmp_path does not; removed afterwards, so nothing is left outside tmp_path."""
    short = Path(tempfile.mkdtemp(prefix="fm-", dir="/tmp"))
    for name in ("TMPDIR", "TMP", "TEMP"):
        monkeypatch.setenv(name, str(short))
    try:
        yield short
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_report_renders_in_chromium_without_errors_or_network(project: Project, short_tmpdir: Path) -> None:
    make_mixed_project(project)
    result = project.run("report", "-o", "report.html")
    assert result.returncode == 0, result
    url = project.path("report.html").as_uri()
    executable = CHROMIUM if os.path.isfile(CHROMIUM) else shutil.which("chromium")
    problems = []
    requests = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("request", lambda r: requests.append(r.url))
            # Anything but the page itself is refused and remembered, so a stray fetch fails the test.
            page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page.goto(url, wait_until="load")
            page.wait_for_timeout(200)

            grouped = page.locator(".graph-grouped svg.graph")
            box = grouped.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 20, box
            assert page.locator(".graph-grouped g.node").count() == GROUPS
            assert page.locator(".graph-full").is_hidden()
            page.locator("button.toggle-graph").click()
            assert page.locator(".graph-full").is_visible() and page.locator(".graph-grouped").is_hidden()
            assert page.locator(".graph-full g.node").count() == TASKS
            full_box = page.locator(".graph-full svg.graph").bounding_box()
            assert full_box and full_box["height"] > box["height"]

            timeline = page.locator("svg.timeline")
            tbox = timeline.bounding_box()
            assert tbox and tbox["width"] > 500 and tbox["height"] > 20, tbox
            assert page.locator("svg.timeline g.bar").count() == ATTEMPTS
            bar = page.locator("svg.timeline g.bar rect").first.bounding_box()
            assert bar and bar["width"] > 0 and bar["height"] > 0

            table = page.locator("table.tasks")
            durations = table.locator("th", has_text="Duration")
            durations.click()
            assert durations.get_attribute("aria-sort") == "ascending"
            values = [float(v) for v in table.locator("tbody.row > tr:first-child > td:nth-child(5)")
                      .evaluate_all("cells => cells.map(c => c.getAttribute('data-v'))")]
            assert values == sorted(values) and len(values) == TASKS
            durations.click()
            values = [float(v) for v in table.locator("tbody.row > tr:first-child > td:nth-child(5)")
                      .evaluate_all("cells => cells.map(c => c.getAttribute('data-v'))")]
            assert values == sorted(values, reverse=True)
            table.locator("th", has_text="Task").click()
            names = table.locator("tbody.row > tr:first-child > td:first-child").evaluate_all(
                "cells => cells.map(c => c.getAttribute('data-v'))")
            assert names == sorted(names)

            page.locator(".filters input").fill("check")
            assert page.locator("tbody.row:visible").count() == 3
            assert page.locator(".filters .count").inner_text() == f"3 of {TASKS} tasks"
            page.locator(".filters input").fill("")
            page.locator(".filters select").select_option("failed")
            assert page.locator("tbody.row:visible").count() == 1

            # A task's node leads to its row, whose attempts and log unfold.
            page.locator(".filters select").select_option("")
            page.locator('.graph-full g.node[data-task="bad"]').click()
            row = page.locator('tbody.row[data-status="failed"]')
            assert row.locator("details").first.get_attribute("open") is not None
            row.locator("details details summary").first.click()
            assert "using token ***" in row.locator("pre.log").first.inner_text()
        finally:
            browser.close()
    assert problems == []
    assert requests == [url], requests
