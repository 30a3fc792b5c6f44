"""Open a built dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright; no browser download) and report what rendered. Used by tests/test_site.py, and by hand:
    python tests/site_check.py results/site shot.png
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def inspect_site(site_dir: str | Path, screenshot: str | Path | None = None, volume: int | None = None) -> dict:
    """Load index.html from file:// (offline: every other request is refused) and return the console
    errors, failed requests, and for each chart its type, data points and painted pixels."""
    from playwright.sync_api import sync_playwright

    page_path = Path(site_dir).resolve()
    url = (page_path / "index.html" if page_path.is_dir() else page_path).as_uri()
    errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def only_local(route):
            if route.request.url.startswith("file://"):
                return route.continue_()
            outside.append(route.request.url)
            return route.abort()

        page.route("**/*", only_local)
        page.goto(url)
        page.wait_for_function("window.TUNEBENCH_READY === true || document.querySelectorAll('.empty').length > 0",
                               timeout=20000)
        if volume is not None:
            page.fill("#volume", str(volume))
            page.dispatch_event("#volume", "input")
        charts = page.evaluate("""() => (window.TUNEBENCH_CHARTS || []).map(c => {
            const canvas = c.canvas, ctx = canvas.getContext('2d');
            const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
            return {type: c.config.type, section: canvas.closest('section').id,
                    points: c.data.datasets.reduce((n, d) => n + d.data.filter(v => v !== null).length, 0),
                    data: c.data.datasets.map(d => d.data), painted, width: canvas.width, height: canvas.height};
        })""")
        info = page.evaluate("""() => ({
            title: document.title,
            empty: [...document.querySelectorAll('.empty')].map(e => e.closest('section').id),
            leaderboard_rows: document.querySelectorAll('#leaderboard tbody tr').length,
            leaderboard_text: document.querySelector('#leaderboard').innerText,
            cost_text: document.querySelector('#cost').innerText,
            errors_text: document.querySelector('#errors').innerText,
            decision_text: (document.querySelector('#decision') || {}).innerText || '',
            run_line: document.getElementById('run-line').innerText,
        })""")
        if screenshot:
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return {"errors": errors, "outside_requests": outside, "charts": charts, **info}


if __name__ == "__main__":
    result = inspect_site(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    result.pop("leaderboard_text"), result.pop("cost_text")
    for c in result["charts"]:
        c.pop("data")
    print(json.dumps(result, indent=1))
