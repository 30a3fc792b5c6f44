"""The dashboard in a real headless Chromium (Debian's, driven by Playwright: no browser download),
the plots, the Snakemake report and publishing. A screenshot of the demo's dashboard is kept under
build/test-artifacts/ (or $TUNEBENCH_TEST_ARTIFACTS)."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from site_check import chromium, inspect_site

from conftest import ROOT, run
from tunebench.core.atomic import read_json
from tunebench.report.plots import plot_names, render_plots
from tunebench.report.publish import publish_branch, publish_folder
from tunebench.report.site import CHARTJS, SecretInOutput, build_site

ARTIFACTS = Path(os.environ.get("TUNEBENCH_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
needs_chromium = pytest.mark.skipif(chromium() is None, reason="no chromium: apt install chromium (make test does)")
SITE_SRC = ROOT / "site" / "src"


@pytest.fixture(scope="module")
def chartjs() -> Path:
    path = ROOT / "site" / CHARTJS
    assert path.is_file(), "make install puts Chart.js there (npm ci --prefix site, from the lock file)"
    return path


def empty_summary() -> dict:
    return {"suite": "test", "cells": [], "tasks": {},
            "provenance": {"git_commit": None, "git_dirty": False, "config_hash": "0" * 64, "packages": {},
                           "hardware": {}, "started_at": "2026-01-01T00:00:00+00:00",
                           "finished_at": "2026-01-01T00:00:00+00:00", "summarized_at": "2026-01-01T00:00:00+00:00"}}


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@needs_chromium
def test_the_dashboard_renders_the_demo_results_in_chromium(demo_run):
    summary = read_json(demo_run / "results/test/summary.json")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page = inspect_site(demo_run / "results/test/site", screenshot=shot)
    assert page["errors"] == [] and page["outside_requests"] == []  # offline, from file://
    assert page["empty"] == ["agreement"]  # the test suite configures no backend pair: said, not broken
    sections = [c["section"] for c in page["charts"]]
    n_tasks = len(summary["tasks"])
    assert sections == ["tasks"] * n_tasks + ["forgetting", "cost", "cost"]
    for c in page["charts"]:
        assert c["points"] > 0 and c["painted"] > 0.02 * c["width"] * c["height"], c["section"]
    systems = {(c["system"], c["prompting"]) for c in summary["cells"] if c["primary"]}
    assert page["leaderboard_rows"] == len(systems)
    routing = next(c for c in summary["cells"] if c["primary"] and c["task"] == "ticket_routing"
                   and c["system"] == "smollm2-135m-instruct" and c["prompting"] == "5shot")
    assert f"{routing['value']:.3f} [{routing['ci_low']:.3f}, {routing['ci_high']:.3f}]" in page["leaderboard_text"]
    # the TCO chart shows the summary's own numbers, then follows the daily-volume input
    costs = summary["costs"]
    tco_chart = page["charts"][-1]["data"][0]
    assert tco_chart == pytest.approx([r["tco_usd"] for r in costs["rows"] if r["cost_per_query_usd"] is not None])
    busy = inspect_site(demo_run / "results/test/site", volume=20_000_000)
    days = costs["tco"]["months"] * 365 / 12
    expected = [math.ceil(20e6 / (r["items_per_s"] * 86400 * costs["utilization"])) * r["usd_per_hour"] * 24 * days
                + r["tco_breakdown"]["training_usd"] for r in costs["rows"] if r["cost_per_query_usd"] is not None]
    assert busy["charts"][-1]["data"][0] == pytest.approx(expected) and busy["errors"] == []
    assert "TCO at 20,000,000/day" in busy["cost_text"]
    assert png_size(shot)[1] > 1500  # the whole page: leaderboard, charts, tables
    wrong = next(r for r in summary["errors"] if r["wrong"])  # error classes per cell, as summary.json has them
    assert f"{wrong['wrong']} of {wrong['n']}" in page["errors_text"]
    assert all(k in page["errors_text"] for k in wrong["errors"])
    decided = summary["decision"]["tasks"]  # which system to ship: each task's sentence, and its pick marked
    assert decided and all(t["sentence"] in page["decision_text"] for t in decided)
    assert page["decision_text"].count("✓") == len(decided)


@needs_chromium
def test_an_empty_run_says_not_run_yet_everywhere_without_errors(tmp_path, chartjs):
    build_site(empty_summary(), tmp_path / "site", src_dir=SITE_SRC, chartjs=chartjs, single=tmp_path / "one.html")
    for target in (tmp_path / "site", tmp_path / "one.html"):
        page = inspect_site(target)
        assert page["errors"] == [] and page["charts"] == []
        assert page["empty"] == ["leaderboard", "tasks", "errors", "forgetting", "leakage", "gates", "cost", "decision", "agreement"]


@needs_chromium
def test_the_one_file_dashboard_matches_the_site(demo_run):
    site = inspect_site(demo_run / "results/test/site")
    one = inspect_site(demo_run / "results/test/dashboard.html")
    assert one["errors"] == [] and one["outside_requests"] == []
    assert [c["data"] for c in one["charts"]] == [c["data"] for c in site["charts"]]


def test_the_snakemake_report_is_one_html_file_with_plots_and_dashboard(demo_run):
    report = demo_run / "report.html"
    proc = run([str(Path(sys.executable).with_name("snakemake")), "--report", str(report), "--config", "suite=test"],
               cwd=demo_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text()
    for name in ("task_ticket_routing.png", "forgetting.png", "cost_accuracy.png", "tco.png", "dashboard.html",
                 "summary.md"):
        assert name in html
    assert "<script src=\"http" not in html  # self-contained


def test_plots_cover_every_task_and_say_when_there_is_nothing_yet(tmp_path, demo_run):
    summary = read_json(demo_run / "results/test/summary.json")
    names = plot_names(list(summary["tasks"]))
    assert summary["artifacts"]["plots"] == [f"plots/{n}" for n in names]
    for name in names:
        assert png_size(demo_run / "results/test/plots" / name)[0] > 300
    assert "![ticket_routing: primary metric with confidence intervals](plots/task_ticket_routing.png)" in (
        demo_run / "results/test/summary.md").read_text()
    render_plots(empty_summary(), {n: tmp_path / n for n in plot_names(["ticket_routing"])})
    assert all(png_size(tmp_path / n)[0] > 100 for n in plot_names(["ticket_routing"]))


def test_a_credential_in_the_data_stops_the_build_and_keeps_the_old_site(tmp_path, chartjs, monkeypatch):
    build_site(empty_summary(), tmp_path / "site", src_dir=SITE_SRC, chartjs=chartjs)
    before = (tmp_path / "site" / "data.js").read_text()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-0123456789")
    leaky = {**empty_summary(), "suite": "run with sk-canary-0123456789"}
    with pytest.raises(SecretInOutput) as err:
        build_site(leaky, tmp_path / "site", src_dir=SITE_SRC, chartjs=chartjs)
    assert "$OPENAI_API_KEY" in str(err.value) and "sk-canary" not in str(err.value)
    assert (tmp_path / "site" / "data.js").read_text() == before


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_publish_to_a_folder_and_to_a_gh_pages_branch(tmp_path, chartjs, monkeypatch):
    site = tmp_path / "site"
    build_site(empty_summary(), site, src_dir=SITE_SRC, chartjs=chartjs)
    out = publish_folder(site, tmp_path / "public")
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in site.iterdir()] + [".nojekyll"])

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "t"), monkeypatch.setenv("GIT_AUTHOR_EMAIL", "t@t")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "t"), monkeypatch.setenv("GIT_COMMITTER_EMAIL", "t@t")
    first = publish_branch(site, repo=repo)
    second = publish_branch(site, repo=repo)
    assert git(repo, "rev-parse", "gh-pages") == second and git(repo, "rev-parse", f"{second}^") == first
    files = git(repo, "ls-tree", "--name-only", "gh-pages").split()
    assert {"index.html", "app.js", "data.js", "chart.umd.js", ".nojekyll"} <= set(files)
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main" and git(repo, "status", "--porcelain") == ""

    monkeypatch.setenv("HF_TOKEN", "hf_canary_abcdefgh")
    (site / "data.js").write_text((site / "data.js").read_text() + "// hf_canary_abcdefgh\n")
    with pytest.raises(SecretInOutput):
        publish_branch(site, repo=repo)
    assert git(repo, "rev-parse", "gh-pages") == second  # nothing published


def test_the_publish_command_names_what_is_missing(tmp_path, capsys):
    from tunebench.cli import main

    assert main(["--root", str(tmp_path), "publish", "--to", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is not a built dashboard (missing index.html, app.js, data.js, chart.umd.js)" in err
    assert "Fix: build it first" in err and not (tmp_path / "out").exists()
