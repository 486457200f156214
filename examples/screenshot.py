"""Make examples/report.png: the example pipeline's report, as headless Chromium shows it.

    cp -r examples /tmp/example && cd /tmp/example && flowmake run
    flowmake report -o report.html
    python screenshot.py report.html report.png

The same browser and flags as the report's browser test (tests/test_report_browser.py):
Debian's chromium driven by playwright (`pip install -e '.[test]'`). The graph is shown with
every matrix variant, and the picture is cut below the start of the task table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main(page_path: str, png_path: str) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
            toggle = page.locator("button.toggle-graph")
            if toggle.count():
                toggle.first.click()
            bottom = page.locator("table.tasks tbody.row").nth(5).bounding_box()
            height = int(bottom["y"] + bottom["height"]) + 8 if bottom else 1400
            page.screenshot(path=png_path, full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": height})
        finally:
            browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
