"""`tunebench`: the commands around the workflow.

    tunebench baseline update --run-id ID [--system NAME ...] [--suite NAME | --results DIR] [--replace]
        write baselines/<system>.json from a finished run (an existing one is archived, never lost)
    tunebench gate [--suite NAME] [--configfile F ...] [--config KEY=VALUE ...] [--results DIR] [--strict]
        the run's comparisons against the stored baselines (for CI), read from the configured suite's
        results_dir (or --results); exit status: 0 every compared metric passed, 1 a metric FAILed,
        2 bad input (no comparisons there, a config error), 3 nothing was compared (no baseline
        covers this run's cells; --strict: any system or cell not compared)
    tunebench publish (--to DIR | --gh-pages [--branch gh-pages] [--push REMOTE]) [--site results/site]
        copy the built dashboard to a folder, or commit it as the whole tree of a branch (after
        checking that no credential from the environment is in it)
    tunebench hub (push | pull) [--suite demo] [--configfile F ...]
        the same as `snakemake hub_push` / `hub_pull` without the workflow around them: push what
        exists now (safe any time), or pull a suite onto this host (config `hub`, token from HF_TOKEN)
    tunebench plan [TARGET ...] [--cores N] [--suite NAME] [--configfile F ...] [--config KEY=VALUE ...] [--forceall]
        every job the run would run (Snakemake's dry run), with estimated wall time, device, GPU hours and
        API dollars from earlier runs' measurements, and the totals; exit status 1 when over `budget`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunebench.core.atomic import read_json
from tunebench.core.errors import TunebenchError
from tunebench.core.layout import BASELINES, Layout


def _baseline_update(args) -> int:
    from tunebench.compare.baseline import baseline_from_results, write_baseline

    results = _suite_results(args)
    scores = Path(Layout(str(results)).scores_dir())
    systems = args.system
    if not systems and scores.is_dir():  # default: every base model of the run
        systems = sorted(p.name for p in scores.iterdir() if p.is_dir() and "+" not in p.name)
    if not systems:
        raise TunebenchError(f"no systems with scores in {results}", field="--results",
                             fix="run the workflow first, or name the results folder of a run")
    for system in systems:
        doc = baseline_from_results(results, system, args.run_id)
        path = write_baseline(doc, Path(args.root) / BASELINES, root=args.root, replace=args.replace)
        print(f"wrote {path}: {len(doc['scores'])} scores of {system} from run {args.run_id} ({doc['suite']})")
    return 0


GATE_PASS, GATE_FAIL, GATE_BAD_INPUT, GATE_NOT_COMPARED = 0, 1, 2, 3  # `tunebench gate` exit statuses
GATE_EXIT_STATUS = """exit status:
  0  every compared metric passed (PASS or IMPROVED)
  1  at least one metric FAILed against its baseline
  2  bad input: no comparisons in the results folder, or a config error
  3  not compared: no baseline covers any cell of this run (with --strict: any system without a
     baseline, or any cell missing from its baseline); write one with `tunebench baseline update`"""


def _config_overrides(pairs: list[str] | None) -> dict:
    """`--config KEY=VALUE ...` as snakemake reads it (each value as YAML)."""
    import yaml

    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TunebenchError(f"--config {pair!r} is not KEY=VALUE", field="--config",
                                 fix="e.g. --config suite=test")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _suite_results(args) -> Path:
    """--results when given, else the configured suite's results_dir (as the workflow writes it)."""
    if args.results:
        return Path(args.results)
    from tunebench.config.loader import load_project_from_file

    overrides = _config_overrides(args.config)
    if args.suite:
        overrides["suite"] = args.suite
    root = Path(args.root).resolve()
    project = load_project_from_file(root, args.configfile, overrides=overrides or None)
    results = root / project.results_dir
    try:  # shown (and suggested to `baseline update`) relative to here when it is below here
        return results.relative_to(Path.cwd().resolve())
    except ValueError:
        return results


def _gate(args) -> int:
    from tunebench.compare.gate import p_clause

    results = _suite_results(args)
    folder = Path(Layout(str(results)).comparisons_dir())
    reports = [read_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    if not reports:
        print(f"tunebench gate: no comparisons in {folder}: run the workflow for this suite first, or name the "
              "run's results folder (--results DIR, or --suite NAME for a configured suite)", file=sys.stderr)
        return GATE_BAD_INPUT
    summary = results / "summary.json"
    run_suite = read_json(summary).get("suite") if summary.is_file() else None
    update = f"tunebench baseline update --results {results} --run-id ID"
    failed, compared, not_compared, missing_cells = 0, 0, [], 0
    for report in reports:
        system, base = report["system"], report["baseline"]
        for leak in report.get("leakage", []):  # exact test items in its training data: with or without a baseline
            failed += 1
            print(f"  FAIL {system} leakage: {leak['message']}")
        if base is None:
            not_compared.append(system)
            print(f"NOT COMPARED {system}: no baseline (baselines/{system}.json); write one from this run: "
                  f"{update} --system {system}")
            continue
        rows, missing = report["rows"], report.get("not_in_baseline") or []
        missing_cells += len(missing)
        suites = f"baseline suite `{base['suite']}`" + (f", this run's suite `{run_suite}`" if run_suite else "")
        if not rows:
            not_compared.append(system)
            print(f"NOT COMPARED {system} vs {base['file']} (run {base['run_id']}; {suites}): none of this run's "
                  f"cells is in the baseline" + (f" ({', '.join(missing)})" if missing else "")
                  + f"; store this run as the baseline: {update} --system {system} --replace")
            continue
        compared += len(rows)
        counts = report["counts"]
        print(f"{system} vs {base['file']} (run {base['run_id']}): "
              f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['IMPROVED']} IMPROVED")
        for row in rows:
            if row["verdict"] == "FAIL":
                failed += 1
                print(f"  FAIL {row['task']}/{row['prompting']} {row['metric']}: {row['baseline']:.3f} -> "
                      f"{row['current']:.3f} ({row['delta_pp']:+.1f} pp, {p_clause(row['p_value'])}): {row['why']}")
        if missing:
            print(f"  not in the baseline (not compared): {', '.join(missing)}")
    if failed:
        print(f"gate: FAIL ({failed} metric(s) failed of {compared} compared)")
        return GATE_FAIL
    if not compared:
        print(f"gate: NOT COMPARED: no cell of {results} was compared with a baseline "
              f"(no usable baseline for: {', '.join(not_compared)}); this is not a pass")
        return GATE_NOT_COMPARED
    if args.strict and (not_compared or missing_cells):
        print(f"gate: NOT COMPARED (--strict): {compared} metric(s) passed, but "
              + "; ".join(([f"no usable baseline for {', '.join(not_compared)}"] if not_compared else [])
                          + ([f"{missing_cells} cell(s) missing from their baseline"] if missing_cells else [])))
        return GATE_NOT_COMPARED
    print(f"gate: PASS ({compared} metric(s) compared"
          + (f"; not compared: {', '.join(not_compared)}" if not_compared else "") + ")")
    return GATE_PASS


def _publish(args) -> int:
    from tunebench.report.publish import publish_branch, publish_folder

    site = Path(args.root) / args.site
    if args.to:
        dest = publish_folder(site, args.to)
        print(f"published {site} -> {dest} (open {dest}/index.html, or serve the folder)")
    else:
        commit = publish_branch(site, repo=args.root, branch=args.branch, push=args.push)
        print(f"published {site} -> branch {args.branch} at {commit[:12]}"
              + (f", pushed to {args.push}" if args.push else f" (push it: git push <remote> {args.branch})"))
    return 0


def _hub(args) -> int:
    import logging

    from tunebench.config.loader import load_project_from_file
    from tunebench.hub.sync import HubSkip, SyncScope, pull, push

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    root = Path(args.root).resolve()
    project = load_project_from_file(root, args.configfile, overrides={"suite": args.suite} if args.suite else None)
    scope = SyncScope.from_project(project)
    try:
        if args.direction == "push":
            report = push(root, scope)
            print(f"pushed {report.uploaded} changed of {report.files} files to {report.repo}"
                  + (f" at {report.commit[:12]}" if report.commit else " (nothing changed)"))
        else:
            got = pull(root, scope)
            print(f"pulled {len(got.downloaded)} files from {got.repo}; {len(got.same)} outputs already here; "
                  f"{len(got.kept)} of yours kept")
    except HubSkip as why:
        print(f"tunebench: hub {args.direction} skipped: {why}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tunebench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="the tunebench checkout (default: here)")
    sub = parser.add_subparsers(dest="command", required=True)
    baseline = sub.add_parser("baseline", help="stored baselines").add_subparsers(dest="action", required=True)
    update = baseline.add_parser("update", help="write baselines/<system>.json from a finished run")
    update.add_argument("--run-id", required=True, help="what identifies the run (CI run id, tag, date)")
    update.add_argument("--system", action="append", help="system(s) to store (default: every base model)")
    update.add_argument("--results", help="the run's results folder (default: the configured suite's results_dir)")
    update.add_argument("--suite", help="the suite whose results_dir to read (default: the config's `suite`)")
    update.add_argument("--configfile", nargs="+", help="config file(s), as for snakemake (default: configs/config.yaml)")
    update.add_argument("--config", nargs="+", metavar="KEY=VALUE", help="config overrides, as for snakemake "
                        "(e.g. --config suite=test)")
    update.add_argument("--replace", action="store_true", help="archive an existing baseline and replace it")
    update.set_defaults(run=_baseline_update)
    gate = sub.add_parser("gate", help="the run against its baselines: exit 1 on a FAIL, 3 if nothing was compared",
                          description="Check the run's comparisons (results_dir/comparisons/*.json, written by\n"
                          "the workflow) with the stored baselines: print every FAIL and every system or\n"
                          "cell that was not compared.", epilog=GATE_EXIT_STATUS,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    gate.add_argument("--results", help="the run's results folder (default: the configured suite's results_dir)")
    gate.add_argument("--suite", help="the suite whose results_dir to read (default: the config's `suite`)")
    gate.add_argument("--configfile", nargs="+", help="config file(s), as for snakemake (default: configs/config.yaml)")
    gate.add_argument("--config", nargs="+", metavar="KEY=VALUE", help="config overrides, as for snakemake "
                      "(e.g. --config suite=test)")
    gate.add_argument("--strict", action="store_true", help="also exit 3 when some system has no baseline or "
                      "some cell is missing from its baseline, even if everything compared passed")
    gate.set_defaults(run=_gate)
    publish = sub.add_parser("publish", help="copy the dashboard to a folder or a gh-pages branch")
    where = publish.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", help="a folder (replaced atomically) any static host can serve")
    where.add_argument("--gh-pages", action="store_true", help="commit the site as the whole tree of --branch")
    publish.add_argument("--branch", default="gh-pages", help="the branch for --gh-pages (default: gh-pages)")
    publish.add_argument("--push", metavar="REMOTE", help="push the branch to this remote (default: do not push)")
    publish.add_argument("--site", default="results/site", help="the built site (default: results/site)")
    publish.set_defaults(run=_publish)
    hub = sub.add_parser("hub", help="push a suite's artifacts to the configured Hub repo, or pull them here")
    hub.add_argument("direction", choices=["push", "pull"])
    hub.add_argument("--suite", help="the suite (default: the config's `suite`)")
    hub.add_argument("--configfile", nargs="+", help="config file(s), as for snakemake (default: configs/config.yaml)")
    hub.set_defaults(run=_hub)
    from tunebench.plan.command import add_parser as add_plan_parser

    add_plan_parser(sub, _config_overrides)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except TunebenchError as exc:
        print(f"tunebench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
