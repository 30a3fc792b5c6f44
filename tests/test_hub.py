"""Hub sync (rules hub_push / hub_pull, `tunebench hub`), against a LOCAL STAND-IN of the Hugging Face
Hub at the HTTP level (tests/hub_standin.py): the Hub cannot be reached from here. tunebench's real
huggingface_hub calls run unchanged; only the endpoint differs."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo, files_containing, run
from tunebench.atomic import read_jsonl
from tunebench.hub import check_manifest, sync_files

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TUNEBENCH = str(Path(sys.executable).with_name("tunebench"))
STANDIN = Path(__file__).with_name("hub_standin.py")
TOKEN = "hf_canary" + secrets.token_hex(16)  # made here, so only a leak can write it anywhere
REPO = "tunebench-ci/results"


@pytest.fixture
def hub(tmp_path):
    """The stand-in Hub as its own process; yields (url, its storage folder)."""
    store = tmp_path / "hub-standin"
    proc = subprocess.Popen([sys.executable, str(STANDIN), "--root", str(store), "--token", TOKEN],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    yield line.split()[-1], store
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def requests_seen(store: Path) -> list[dict]:
    log = store / "requests.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def standin_file(store: Path, path: str) -> bytes:
    """A file at the head of main, read from the stand-in's storage."""
    repo = store / "repos/dataset" / REPO
    head = json.loads((repo / "repo.json").read_text())["refs"]["main"]
    oid = json.loads((repo / "commits" / f"{head}.json").read_text())["tree"][path]
    return (store / "blobs" / oid).read_bytes()


def overlay(path: Path, url: str, **hub) -> Path:
    """A config file added after configs/config.yaml: where the stand-in is, and which suites sync."""
    path.write_text(yaml.safe_dump({"hub": {"repo": REPO, "endpoint": url, **hub}}))
    return path


def online(**extra) -> dict:
    return {"HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN, **extra}


def snakemake(repo: Path, conf: Path, *args: str, env: dict | None = None,
              extra: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """Targets and options first: --configfile takes every path after it."""
    return run([SNAKEMAKE, "--cores", "1", *args, "--config", "suite=test",
                "--configfile", "configs/config.yaml", str(conf), *map(str, extra)], cwd=repo, env=env)


def planned(proc: subprocess.CompletedProcess) -> bool:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return "Nothing to be done" not in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_standin_push_then_pull_into_an_empty_clone_plans_nothing(demo_run, hub, tmp_path):
    url, store = hub
    conf = overlay(tmp_path / "hub.yaml", url, suites=["test"])  # the test suite syncs only here, on purpose
    pushed = snakemake(demo_run, conf, "hub_push", env=online())
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    log = (demo_run / "logs/hub/test-push.log").read_text()
    assert "hub: pushed" in log and "changed of" in log, log
    commits = [r for r in requests_seen(store) if r["path"].endswith("/commit/main")]
    assert len(commits) == 1 and all(r["auth"] is True for r in requests_seen(store))

    # a second push with nothing changed sends no commit
    assert snakemake(demo_run, conf, "hub_push", env=online()).returncode == 0
    assert len([r for r in requests_seen(store) if r["path"].endswith("/commit/main")]) == 1
    assert "nothing to push" in (demo_run / "logs/hub/test-push.log").read_text()

    # a new host: the project's files only (no data, resources, results or .snakemake)
    fresh = copy_repo(tmp_path / "fresh")
    assert planned(snakemake(fresh, conf, "-n"))  # everything to do
    pulled = snakemake(fresh, conf, "hub_pull", env=online())
    assert pulled.returncode == 0, pulled.stderr[-3000:]
    assert not planned(dry := snakemake(fresh, conf, "-n")), dry.stdout[-3000:]
    # Snakemake's records came along for everything synced (not for raw data or node_modules)
    assert "Rules with missing metadata: raw_fetch site_deps" in dry.stdout + dry.stderr, dry.stderr[-2000:]
    model = fresh / "resources/models/smollm2-135m-instruct"
    assert (model / "tunebench_model.json").is_file() and not list(model.glob("*.safetensors"))  # no weights
    for rel in ("results/test/summary.json", "results/test/scores", "results/test/adapters", "data/prepared"):
        assert same_tree(demo_run / rel, fresh / rel), rel

    # the records work on the new host: a changed param reruns its jobs, and only those
    fewer = tmp_path / "resamples.yaml"
    fewer.write_text("bootstrap: {resamples: 500}\n")
    rerun = snakemake(fresh, conf, "-n", extra=(fewer,))
    assert planned(rerun) and "params have changed" in rerun.stdout and "predictions_score" in rerun.stdout
    for rule in ("model_materialize", "predictions_generate", "adapter_train", "lm_eval_run"):
        assert rule not in rerun.stdout, rule

    # the new host goes on: a job that needs the model rebuilds its weights, and nothing else reruns
    cell = "results/test/predictions/smollm2-135m-instruct/ticket_routing/0shot.jsonl"
    (fresh / cell).unlink()
    again = snakemake(fresh, conf, cell)
    assert again.returncode == 0 and "rebuilding them from its source" in again.stderr, again.stderr[-3000:]
    assert list(model.glob("*.safetensors"))
    assert [deterministic(r) for r in read_jsonl(fresh / cell)] == [deterministic(r) for r in read_jsonl(demo_run / cell)]
    after = snakemake(fresh, conf, "-n").stdout
    assert "predictions_score" in after and "model_materialize" not in after
    assert "predictions_generate" not in after and "lm_eval_run" not in after and "adapter_train" not in after

    assert files_containing(TOKEN, demo_run / "results", demo_run / "logs", demo_run / ".snakemake", fresh, store) == []


def deterministic(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "latency_s"}


def same_tree(a: Path, b: Path) -> bool:
    if a.is_file():
        return b.is_file() and a.read_bytes() == b.read_bytes()
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and ".work" not in p.parts)
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / p).read_bytes() == (b / p).read_bytes() for p in files_a)


# -- without the workflow: a small results tree ------------------------------------------------
def fake_results(repo: Path) -> None:
    for rel, text in {"results/summary.json": "{}", "results/scores/m/t/0shot.json": '{"mean": 0.5}',
                      "results/adapters/m/t-8/adapter_config.json": "{}",
                      "results/adapters/m/t-8/.snakemake_timestamp": "",
                      "results/adapters/.work/m/t-8/checkpoint-1/state.json": "{}",
                      "results/test/summary.json": "{}", "results/merged/m+t-8/model.safetensors": "x",
                      "results/lm_eval/.resume/m/b/cache.db": "x", "results/.summary.json.abc.tmp": "x",
                      "data/prepared/ticket_routing/test.jsonl": '{"id": 1}\n',
                      "resources/models/smollm2-135m-instruct/model.safetensors": "weights",
                      "resources/models/smollm2-135m-instruct/tunebench_model.json": "{}"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)


def tb(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run([TUNEBENCH, "hub", *args], cwd=repo, env=env)


def test_what_travels_is_the_suites_own_results_without_work_folders(project_copy):
    from tunebench.config import load_project_from_file

    fake_results(project_copy)
    project = load_project_from_file(project_copy, overrides={"suite": "demo"})
    assert sorted(sync_files(project_copy, project)) == [
        "data/prepared/ticket_routing/test.jsonl", "resources/models/smollm2-135m-instruct/tunebench_model.json",
        "results/adapters/m/t-8/.snakemake_timestamp",
        "results/adapters/m/t-8/adapter_config.json", "results/scores/m/t/0shot.json", "results/summary.json"]


@pytest.mark.parametrize("path", ["../../etc/cron.d/x", "/etc/passwd", "configs/config.yaml",
                                  "results/../Snakefile"])
def test_a_manifest_cannot_write_outside_the_suites_folders(project_copy, path):
    from tunebench.config import load_project_from_file
    from tunebench.errors import TunebenchError

    project = load_project_from_file(project_copy, overrides={"suite": "demo"})
    with pytest.raises(TunebenchError, match="outside this suite's folders"):
        check_manifest({"format": 1, "files": {path: {"sha256": "0", "size": 1}}}, project, "hub manifest")


def test_standin_pull_keeps_your_differing_outputs_and_restores_missing_ones(project_copy, hub, tmp_path):
    url, store = hub
    conf = overlay(tmp_path / "hub.yaml", url)
    fake_results(project_copy)
    args = ("--suite", "demo", "--configfile", "configs/config.yaml", str(conf))
    pushed = tb(project_copy, "push", *args, env=online())
    assert pushed.returncode == 0 and "pushed 6 changed of 6 files" in pushed.stdout, pushed.stderr
    pushed = tb(project_copy, "push", *args, env=online())
    assert "pushed 0 changed of 6 files" in pushed.stdout and "nothing changed" in pushed.stdout

    (project_copy / "results/scores/m/t/0shot.json").write_text('{"mean": 0.9}')  # yours now differs
    shutil.rmtree(project_copy / "results/adapters/m")  # and this output is gone
    pulled = tb(project_copy, "pull", *args, env=online(HF_TOKEN=""))  # a public read: no token needed
    assert pulled.returncode == 2 and "token cannot see it" in pulled.stderr  # ... but the repo is private
    pulled = tb(project_copy, "pull", *args, env=online())
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 2 files" in pulled.stdout and "1 of yours kept" in pulled.stdout
    assert (project_copy / "results/scores/m/t/0shot.json").read_text() == '{"mean": 0.9}'
    assert (project_copy / "results/adapters/m/t-8/adapter_config.json").read_text() == "{}"
    assert not list((project_copy / ".snakemake/tunebench-hub").iterdir())  # staging cleaned up
    assert files_containing(TOKEN, project_copy, store) == []


def test_the_test_suite_never_syncs_and_offline_or_unreachable_is_a_clear_skip(project_copy, hub, tmp_path):
    url, store = hub
    fake_results(project_copy)
    conf = overlay(tmp_path / "hub.yaml", url)  # the shipped hub.suites: demo, quick, core, full
    before = sorted(p.read_bytes() for p in (project_copy / "results").rglob("*") if p.is_file())
    proc = snakemake(project_copy, conf, "hub_pull", env=online())
    assert proc.returncode == 0 and "suite 'test' never syncs" in proc.stderr, proc.stderr[-2000:]
    proc = tb(project_copy, "push", "--suite", "test", "--configfile", "configs/config.yaml", str(conf), env=online())
    assert proc.returncode == 0 and "never syncs" in proc.stderr

    args = ("--suite", "demo", "--configfile", "configs/config.yaml", str(conf))
    proc = tb(project_copy, "push", *args, env=online(HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0 and "offline (HF_HUB_OFFLINE=1)" in proc.stderr
    assert requests_seen(store) == []  # none of the above talked to the Hub

    dead = overlay(tmp_path / "dead.yaml", "http://127.0.0.1:9")  # nothing listens there
    proc = tb(project_copy, "pull", "--suite", "demo", "--configfile", "configs/config.yaml", str(dead), env=online())
    assert proc.returncode == 0 and "cannot reach http://127.0.0.1:9" in proc.stderr, proc.stderr
    proc = tb(project_copy, "push", *args, env=online(HF_TOKEN=""))
    assert proc.returncode == 2 and "HF_TOKEN" in proc.stderr and "Traceback" not in proc.stderr

    no_repo = tb(project_copy, "push", "--suite", "demo", env=online())
    assert no_repo.returncode == 0 and "hub sync is off" in no_repo.stderr
    after = sorted(p.read_bytes() for p in (project_copy / "results").rglob("*") if p.is_file())
    assert after == before


def test_a_pulled_model_folder_gets_its_weights_back_on_first_use(tmp_path, tiny_llama_dir):
    from tunebench.errors import SourceError
    from tunebench.models import MODEL_MANIFEST, ensure_weights, materialize_model

    folder = tmp_path / "resources/models/tiny"
    materialize_model({"kind": "local", "path": str(tiny_llama_dir)}, folder)
    (folder / ".snakemake_timestamp").touch()
    weights = (folder / "model.safetensors").read_bytes()
    stamp = (folder / ".snakemake_timestamp").stat().st_mtime_ns
    (folder / "model.safetensors").unlink()  # what a hub pull leaves: manifest, config, tokenizer
    ensure_weights(folder)
    assert (folder / "model.safetensors").read_bytes() == weights
    assert (folder / ".snakemake_timestamp").stat().st_mtime_ns == stamp  # Snakemake sees no change
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tiny")]  # staging gone

    (folder / "model.safetensors").unlink()
    manifest = json.loads((folder / MODEL_MANIFEST).read_text())
    (folder / MODEL_MANIFEST).write_text(json.dumps({**manifest, "gguf_sha256": "another"}))
    with pytest.raises(SourceError, match="another file than the one its results were made with"):
        ensure_weights(folder)
    assert not (folder / "model.safetensors").exists()


def test_standin_push_on_success_uploads_after_a_real_run(project_copy, hub, tmp_path):
    url, store = hub
    conf = overlay(tmp_path / "hub.yaml", url, push_on_success=True)
    target = "data/prepared/ticket_routing/manifest.json"
    proc = run([SNAKEMAKE, "--cores", "1", target, "--configfile", "configs/config.yaml", str(conf)],
               cwd=project_copy, env=online())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["path"] for r in requests_seen(store) if r["path"].endswith("/commit/main")]
    got = json.loads(standin_file(store, "tunebench-sync/demo.json"))
    assert target in got["files"] and target in got["snakemake_metadata"]
    assert got["snakemake_metadata"][target]["rule"] == "split_prepare"
