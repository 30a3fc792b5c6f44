"""The static dashboard: site/src (our page, script and styles) + Chart.js from npm + the run's data,
copied into one folder that works from file:// and from any static host, offline.

The data goes in as `data.js` (a script, because browsers refuse fetch() on file://) and as
`data.json` for other tools. Before anything is written the data is checked for secrets: the value
of any environment variable that looks like a credential must not appear in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from tunebench.core.atomic import atomic_dir, atomic_path
from tunebench.core.errors import TunebenchError

SITE_FILES = ("index.html", "app.js", "style.css")
CHARTJS = Path("node_modules") / "chart.js" / "dist" / "chart.umd.js"
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


class SecretInOutput(TunebenchError):
    """A credential's value would have been published."""


def secret_values(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables that look like credentials (by name), with values long enough to matter."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= 8}


def check_no_secrets(texts: dict[str, str], environ: dict[str, str] | None = None) -> None:
    for name, value in secret_values(environ).items():
        for where, text in texts.items():
            if value in text:
                raise SecretInOutput(f"the value of ${name} appears in {where}", field=name,
                                     fix="remove it from the results (a config field, a model name, an "
                                         "endpoint URL) and rebuild; nothing was written")


def site_data(summary: dict) -> dict:
    """What the page draws: the summary without what only machines need."""
    keep = ("suite", "cells", "tasks", "provenance", "comparisons", "methods", "errors", "adapters", "gates", "costs",
            "agreement", "decision", "leakage")
    return {k: summary[k] for k in keep if k in summary}


def _inline(text: str) -> str:
    return text.replace("</script", "<\\/script").replace("</style", "<\\/style")


def single_file(pages: dict[str, str], chartjs_text: str, data: str) -> str:
    """index.html with its stylesheet and scripts inlined: one file that opens anywhere (the copy
    embedded in the Snakemake report)."""
    html = pages["index.html"]
    swaps = {
        '<link rel="stylesheet" href="style.css">': f"<style>\n{_inline(pages['style.css'])}\n</style>",
        '<script src="chart.umd.js"></script>': f"<script>\n{_inline(chartjs_text)}\n</script>",
        '<script src="data.js"></script>': f"<script>\nwindow.TUNEBENCH = {_inline(data)};\n</script>",
        '<script src="app.js"></script>': f"<script>\n{_inline(pages['app.js'])}\n</script>",
    }
    for tag, inline in swaps.items():
        if tag not in html:
            raise TunebenchError(f"site/src/index.html no longer has {tag}", file="site/src/index.html",
                                 fix="keep the four local <link>/<script> tags the single-file build replaces")
        html = html.replace(tag, inline)
    return html


def build_site(summary: dict, out_dir: str | Path, *, src_dir: str | Path, chartjs: str | Path,
               single: str | Path | None = None) -> list[str]:
    """Write the site into `out_dir` atomically (and, with `single`, the one-file copy); return the
    site's file names."""
    src_dir, chartjs = Path(src_dir), Path(chartjs)
    if not chartjs.is_file():
        raise TunebenchError(f"Chart.js is not installed ({chartjs} is missing)", file="site/package.json",
                             field="dependencies.chart.js", fix="run `npm ci --prefix site` (make install does)")
    data = json.dumps(site_data(summary), ensure_ascii=False, sort_keys=True)
    pages = {name: (src_dir / name).read_text(encoding="utf-8") for name in SITE_FILES}
    check_no_secrets({"data.js": data, **pages})
    with atomic_dir(out_dir) as tmp:
        for name, text in pages.items():
            (tmp / name).write_text(text, encoding="utf-8")
        shutil.copy2(chartjs, tmp / "chart.umd.js")
        (tmp / "data.js").write_text(f"window.TUNEBENCH = {data};\n", encoding="utf-8")
        (tmp / "data.json").write_text(data + "\n", encoding="utf-8")
        names = sorted(p.name for p in tmp.iterdir())
    if single is not None:
        with atomic_path(single) as tmp_file:
            tmp_file.write_text(single_file(pages, chartjs.read_text(encoding="utf-8"), data), encoding="utf-8")
    return names
