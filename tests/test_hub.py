"""Hub sync (rules hub_push / hub_pull, `tunebench hub`), against a LOCAL STAND-IN of the Hugging Face
Hub at the HTTP level (tests/hub_standin.py): the Hub cannot be reached from here. tunebench's real
huggingface_hub calls run unchanged; only the endpoint differs. Binary files (adapters' safetensors,
plots) must travel the way the Hub makes them: through Git LFS, never inline in the commit. The
client runs with HF_HUB_DISABLE_XET=1: the stand-in speaks LFS, not Xet."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from hub_standin import head_tree, read_file

from conftest import copy_repo, files_containing, run
from tunebench.core.atomic import read_jsonl
from tunebench.hub.manifest import check_manifest, sync_files
from tunebench.hub.scope import SyncScope

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
    """A file at the head of main, read from the stand-in's storage (LFS or not)."""
    return read_file(store, "dataset", REPO, path)


def binary(path: str, data: bytes) -> bool:
    return path.endswith((".safetensors", ".png", ".bin")) or b"\0" in data[:8000]


def check_lfs(store: Path, suite: str, root: Path) -> list[str]:
    """Every binary file of the suite's last push went the way the Hub takes it: announced to the LFS
    batch API, PUT to the storage origin (without the token) under its sha256, committed as an
    `lfsFile`; no commit carried one inline. The stand-in refuses inline binaries, so this fails if
    the client's path changes. Returns those files."""
    manifest = json.loads(standin_file(store, f"tunebench-sync/{suite}.json"))["files"]
    tree = head_tree(store, "dataset", REPO)
    seen = requests_seen(store)
    committed = [r for r in seen if r["path"].endswith("/commit/main") and r["status"] == 200]
    inline = {p for r in committed for p in r["regular"]}
    as_lfs = {p for r in committed for p in r["lfs"]}
    put = {r["oid"] for r in seen if r["server"] == "storage" and r["method"] == "PUT" and r["status"] == 200}
    announced = {o["oid"] for r in seen if r["path"].endswith(".git/info/lfs/objects/batch") for o in r["objects"]}
    verified = {r["oid"] for r in seen if r["path"].endswith(".git/info/lfs/objects/verify") and r["status"] == 200}
    binaries = [p for p, e in manifest.items() if e["size"] and binary(p, (root / p).read_bytes())]
    for path in binaries:
        oid = manifest[path]["sha256"]
        assert tree[path].get("lfs") == oid and tree[path]["size"] == manifest[path]["size"], (path, tree[path])
        assert oid in announced and oid in put and oid in verified and path in as_lfs and path not in inline, path
    assert not [p for p in inline if p in manifest and binary(p, standin_file(store, p))]
    assert all(r["auth"] is None for r in seen if r["server"] == "storage"), "the token went to the storage"
    return binaries


def overlay(path: Path, url: str, **hub) -> Path:
    """A config file added after configs/config.yaml: where the stand-in is, and which suites sync."""
    path.write_text(yaml.safe_dump({"hub": {"repo": REPO, "endpoint": url, **hub}}))
    return path


def online(**extra) -> dict:
    # huggingface_hub 2.4 uploads through Xet whenever hf_xet is installed; the stand-in speaks LFS
    return {"HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1", **extra}


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
    assert len(commits) == 1 and all(r["auth"] is True for r in requests_seen(store) if r["server"] == "hub")
    binaries = check_lfs(store, "test", demo_run)
    assert [p for p in binaries if p.startswith("results/test/plots/") and p.endswith(".png")], binaries
    assert [p for p in binaries if p.startswith("results/test/adapters/") and p.endswith(".safetensors")], binaries

    # a second push with nothing changed sends no commit
    assert snakemake(demo_run, conf, "hub_push", env=online()).returncode == 0
    assert len([r for r in requests_seen(store) if r["path"].endswith("/commit/main")]) == 1
    assert "nothing to push" in (demo_run / "logs/hub/test-push.log").read_text()

    # a new host: the project's files only (no data, resources, results or .snakemake)
    fresh = copy_repo(tmp_path / "fresh")
    assert planned(snakemake(fresh, conf, "-n"))  # everything to do
    before_pull = len(requests_seen(store))
    pulled = snakemake(fresh, conf, "hub_pull", env=online())
    assert pulled.returncode == 0, pulled.stderr[-3000:]
    fetched = [r for r in requests_seen(store)[before_pull:] if r["server"] == "storage" and r["method"] == "GET"]
    assert {r["oid"] for r in fetched if r["status"] == 200} >= {
        head_tree(store, "dataset", REPO)[p]["lfs"] for p in binaries}  # the binaries came from the storage
    assert not planned(dry := snakemake(fresh, conf, "-n")), dry.stdout[-3000:]
    # Snakemake's records came along for everything synced (not for raw data or node_modules)
    assert "Rules with missing metadata: raw_fetch\n" in dry.stdout + dry.stderr, dry.stderr[-2000:]
    model = fresh / "resources/models/smollm2-135m-instruct"
    assert (model / "tunebench_model.json").is_file() and not list(model.glob("*.safetensors"))  # no weights
    for rel in ("results/test/summary.json", "results/test/scores", "results/test/adapters", "results/test/plots",
                "data/prepared"):
        assert same_tree(demo_run / rel, fresh / rel), rel
    for path in binaries:
        assert (fresh / path).read_bytes() == (demo_run / path).read_bytes(), path

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
    for rel, data in BINARIES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(data)


BINARIES = {"results/adapters/m/t-8/adapter_model.safetensors": b"\x10\0\0\0\0\0\0\0{}" + bytes(range(256)),
            "results/plots/task_t.png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256))}


def tb(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run([TUNEBENCH, "hub", *args], cwd=repo, env=env)


def test_what_travels_is_the_suites_own_results_without_work_folders(project_copy):
    from tunebench.config.loader import load_project_from_file

    fake_results(project_copy)
    scope = SyncScope.from_project(load_project_from_file(project_copy, overrides={"suite": "demo"}))
    assert SyncScope.from_param(json.loads(json.dumps(scope.to_param()))) == scope  # what a rule's params carry
    assert sorted(sync_files(project_copy, scope)) == [
        "data/prepared/ticket_routing/test.jsonl", "resources/models/smollm2-135m-instruct/tunebench_model.json",
        "results/adapters/m/t-8/.snakemake_timestamp", "results/adapters/m/t-8/adapter_config.json",
        "results/adapters/m/t-8/adapter_model.safetensors", "results/plots/task_t.png",
        "results/scores/m/t/0shot.json", "results/summary.json"]


@pytest.mark.parametrize("path", ["../../etc/cron.d/x", "/etc/passwd", "configs/config.yaml",
                                  "results/../Snakefile"])
def test_a_manifest_cannot_write_outside_the_suites_folders(project_copy, path):
    from tunebench.config.loader import load_project_from_file
    from tunebench.core.errors import TunebenchError

    scope = SyncScope.from_project(load_project_from_file(project_copy, overrides={"suite": "demo"}))
    with pytest.raises(TunebenchError, match="outside this suite's folders"):
        check_manifest({"format": 1, "files": {path: {"sha256": "0", "size": 1}}}, scope, "hub manifest")


def test_standin_pull_keeps_your_differing_outputs_and_restores_missing_ones(project_copy, hub, tmp_path):
    url, store = hub
    conf = overlay(tmp_path / "hub.yaml", url)
    fake_results(project_copy)
    args = ("--suite", "demo", "--configfile", "configs/config.yaml", str(conf))
    pushed = tb(project_copy, "push", *args, env=online())
    assert pushed.returncode == 0 and "pushed 8 changed of 8 files" in pushed.stdout, pushed.stderr
    assert sorted(check_lfs(store, "demo", project_copy)) == sorted(BINARIES)
    pushed = tb(project_copy, "push", *args, env=online())
    assert "pushed 0 changed of 8 files" in pushed.stdout and "nothing changed" in pushed.stdout

    (project_copy / "results/scores/m/t/0shot.json").write_text('{"mean": 0.9}')  # yours now differs
    shutil.rmtree(project_copy / "results/adapters/m")  # and this output is gone
    pulled = tb(project_copy, "pull", *args, env=online(HF_TOKEN=""))  # a public read: no token needed
    assert pulled.returncode == 2 and "token cannot see it" in pulled.stderr  # ... but the repo is private
    pulled = tb(project_copy, "pull", *args, env=online())
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 3 files" in pulled.stdout and "1 of yours kept" in pulled.stdout
    assert (project_copy / "results/scores/m/t/0shot.json").read_text() == '{"mean": 0.9}'
    assert (project_copy / "results/adapters/m/t-8/adapter_config.json").read_text() == "{}"
    adapter = "results/adapters/m/t-8/adapter_model.safetensors"
    assert (project_copy / adapter).read_bytes() == BINARIES[adapter]  # through the LFS redirect
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
    from tunebench.core.errors import SourceError
    from tunebench.data.models import MODEL_MANIFEST, ensure_weights, materialize_model

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


# -- the stand-in itself: LFS the way the Hub does it ------------------------------------------------
def call(url: str, method: str, path: str, body: bytes | dict | None = None, token: str | None = TOKEN,
         ndjson: bool = False) -> tuple[int, dict, bytes]:
    """One raw request (no redirects followed): status, headers, body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    if ndjson:
        data = b"".join(json.dumps(line).encode() + b"\n" for line in body)
    conn.request(method, path, body=data, headers={"Authorization": f"Bearer {token}"} if token else {})
    resp = conn.getresponse()
    out = (resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    conn.close()
    return out


def test_standin_takes_binaries_through_lfs_only_as_the_hub_does(hub):
    url, store = hub
    status, _, _ = call(url, "POST", "/api/repos/create", {"name": "results", "organization": "tunebench-ci",
                                                           "type": "dataset", "visibility": "private"})
    assert status == 200
    api = f"/api/datasets/{REPO}"

    def mode(path: str, sample: bytes, size: int | None = None) -> str:
        files = [{"path": path, "sample": base64.b64encode(sample).decode(), "size": size or len(sample)}]
        status, _, body = call(url, "POST", f"{api}/preupload/main", {"files": files})
        assert status == 200, body
        return json.loads(body)["files"][0]["uploadMode"]

    assert mode("results/summary.json", b'{"a": 1}') == "regular"
    assert mode("notes.md", "é".encode() * 255 + b"\xc3") == "regular"  # a character cut by the sample
    assert mode("results/adapters/a/adapter_model.safetensors", b"{}") == "lfs"  # .gitattributes
    assert mode("results/plots/task_t.png", b"text") == "lfs"  # a dataset repo's .gitattributes
    assert mode("results/x.dat", b"ab\0cd") == "lfs" and mode("results/y.dat", b"\xff\xfe") == "lfs"  # content
    assert mode("results/big.jsonl", b"{}\n", size=10 * 2**20 + 1) == "lfs"  # over 10 MiB

    head = head_tree(store, "dataset", REPO)
    header = {"key": "header", "value": {"summary": "x", "description": ""}}
    png = BINARIES["results/plots/task_t.png"]
    inline = {"key": "file", "value": {"path": "results/plots/task_t.png", "encoding": "base64",
                                       "content": base64.b64encode(png).decode()}}
    status, headers, _ = call(url, "POST", f"{api}/commit/main", [header, inline], ndjson=True)
    assert status == 400 and "contains binary files" in headers["x-error-message"]
    oid = hashlib.sha256(png).hexdigest()
    lfs_file = {"key": "lfsFile", "value": {"path": "results/plots/task_t.png", "algo": "sha256", "oid": oid,
                                            "size": len(png)}}
    status, _, _ = call(url, "POST", f"{api}/commit/main", [header, lfs_file], ndjson=True)
    assert status == 400  # an object nobody uploaded
    assert head_tree(store, "dataset", REPO) == head

    batch = {"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
             "ref": {"name": "main"}, "objects": [{"oid": oid, "size": len(png)}]}
    assert call(url, "POST", f"/datasets/{REPO}.git/info/lfs/objects/batch", batch, token=None)[0] == 401
    status, _, body = call(url, "POST", f"/datasets/{REPO}.git/info/lfs/objects/batch", batch)
    assert status == 200, body
    actions = json.loads(body)["objects"][0]["actions"]
    upload = urlsplit(actions["upload"]["href"])
    assert upload.netloc != urlsplit(url).netloc  # another origin, as S3 is
    target = f"{upload.path}?{upload.query}"
    storage = f"{upload.scheme}://{upload.netloc}"
    assert call(storage, "PUT", target, png[:-1], token=None)[0] == 400  # not what was announced
    assert call(storage, "PUT", target.replace("sig=", "sig=0"), png, token=None)[0] == 403
    assert call(storage, "PUT", target, png, token=None)[0] == 200
    verify = urlsplit(actions["verify"]["href"]).path
    assert call(url, "POST", verify, {"oid": oid, "size": len(png)})[0] == 200
    status, _, body = call(url, "POST", f"/datasets/{REPO}.git/info/lfs/objects/batch", batch)
    assert "actions" not in json.loads(body)["objects"][0]  # stored already: nothing to upload
    status, _, body = call(url, "POST", f"{api}/commit/main", [header, lfs_file], ndjson=True)
    assert status == 200, body

    status, headers, _ = call(url, "HEAD", f"/datasets/{REPO}/resolve/main/results/plots/task_t.png")
    assert status == 302 and headers["x-linked-etag"] == f'"{oid}"' and headers["x-linked-size"] == str(len(png))
    assert headers["x-repo-commit"] and headers["etag"]
    location = urlsplit(headers["location"])
    assert call(storage, "GET", f"{location.path}?{location.query}", token=None)[2] == png
    assert read_file(store, "dataset", REPO, "results/plots/task_t.png") == png
    assert call(url, "GET", f"{api}/xet-write-token/main")[0] == 501  # no Xet here
