"""Materialize a base model as a plain Hugging Face folder (config.json + safetensors + tokenizer).

Sources: a GGUF shipped in an installed package (the embedded default), a Hub repo
(huggingface_hub.snapshot_download, which honours HF_HOME / HF_HUB_OFFLINE / HF_TOKEN), or a local
folder. GGUF weights are dequantized once, here, and saved as safetensors: a model loaded from
GGUF can be neither saved nor trained as is, and reloading the saved folder takes 0.4 s against
15-30 s from the GGUF (SmolLM2-135M on 2 CPU cores).
"""

from __future__ import annotations

import fcntl
import fnmatch
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tunebench.core.atomic import atomic_dir, write_json
from tunebench.core.errors import SourceError
from tunebench.data.sources import hub_snapshot, package_file, sha256_file

log = logging.getLogger(__name__)

MODEL_MANIFEST = "tunebench_model.json"
GGUF_NAME = "model.gguf"  # backend llamacpp: the GGUF as shipped, not dequantized
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


def is_weight_file(name: str) -> bool:
    """The big files of a model folder (what hub sync leaves out and ensure_weights rebuilds)."""
    return name == GGUF_NAME or any(fnmatch.fnmatch(name, p) for p in WEIGHT_PATTERNS)


def has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        any(folder.glob(p)) for p in WEIGHT_PATTERNS)


def _convert_gguf(folder: Path, gguf_name: str, out: Path, dtype: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantizing %s (takes ~30 s for 135M parameters)", folder / gguf_name)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_name,
                                                 dtype=getattr(torch, dtype))
    # The GGUF quantizer marks the model unserializable; its weights are already dequantized.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "architecture": type(model).__name__}


def local_model_folder(source: dict, root: str | Path = ".", model_file: str | None = None) -> Path:
    """A `kind: local` model folder, checked: it exists and holds weights, or the GGUF it names."""
    folder = Path(source["path"])
    folder = folder if folder.is_absolute() else Path(root) / folder
    if not folder.is_dir():
        raise SourceError(f"model folder {source['path']} does not exist", file=model_file, field="source.path",
                          fix="point source.path at an HF model folder (written by save_pretrained)")
    gguf = source.get("gguf_file")
    if gguf and not (folder / gguf).is_file():
        raise SourceError(f"{source['path']} has no {gguf}", file=model_file, field="source.gguf_file",
                          fix="name a .gguf file in that folder")
    if not gguf and not has_weights(folder):
        raise SourceError(f"model folder {source['path']} has no config.json and weights (*.safetensors)",
                          file=model_file, field="source.path",
                          fix="save the model there with save_pretrained, or set gguf_file to convert a GGUF")
    return folder


def materialize_model(source: dict, out_dir: str | Path, *, root: str | Path = ".",
                      dtype: str = "float32", model_file: str | None = None, backend: str = "transformers") -> dict:
    """Write the HF folder for `source` into `out_dir` atomically (backend llamacpp: the GGUF file
    itself, as model.gguf); return its manifest."""
    started = time.time()
    kind = source["kind"]
    gguf = None
    if kind == "package":
        path = package_file(source["distribution"], source["path"], config_file=model_file)
        folder, gguf = path.parent, path.name
    elif kind == "hub":
        gguf = source.get("gguf_file")
        folder = hub_snapshot(source["repo_id"], repo_type="model", revision=source.get("revision", "main"),
                              patterns=[gguf, "*.json", "*.jinja", "tokenizer*"] if gguf else None)
    else:
        folder = local_model_folder(source, root, model_file)
        gguf = source.get("gguf_file")
    if gguf is None and not has_weights(folder):
        raise SourceError(f"{folder} has no config.json and weights (*.safetensors)", file=model_file,
                          field="source.path",
                          fix="use a folder written by save_pretrained, or set gguf_file to convert a GGUF")
    manifest: dict[str, Any] = {"source": source, "dtype": dtype}
    with atomic_dir(out_dir) as tmp:
        if gguf is not None:
            if not (folder / gguf).is_file():
                raise SourceError(f"GGUF file {gguf!r} not found in {folder}", file=model_file,
                                  field="source.gguf_file", fix="name a .gguf file that exists there")
            if backend == "llamacpp":
                shutil.copy2(folder / gguf, tmp / GGUF_NAME)
                manifest.update(backend="llamacpp", file=GGUF_NAME)
            else:
                manifest.update(_convert_gguf(folder, gguf, tmp, dtype))
            manifest["gguf_sha256"] = sha256_file(folder / gguf)
        else:
            for item in folder.iterdir():
                if item.name.startswith("."):
                    continue
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        manifest["seconds"] = round(time.time() - started, 2)
        write_json(tmp / MODEL_MANIFEST, manifest)
    log.info("model ready in %s (%.1f s)", out_dir, time.time() - started)
    return manifest


def ensure_weights(model_dir: str | Path, *, root: str | Path = ".", model_file: str | None = None) -> Path:
    """A model folder pulled from the Hub (tunebench.hub.sync) carries its manifest, config and tokenizer
    but not its weights: the first job that needs them rebuilds them here from the manifest's
    source, once (under a lock), and checks they are the same file the results were made with.
    The folder's Snakemake timestamp is untouched, so nothing downstream looks out of date."""
    from tunebench.core.atomic import read_json

    folder = Path(model_dir)
    manifest = read_json(folder / MODEL_MANIFEST)
    llamacpp = manifest.get("backend") == "llamacpp"

    def ready() -> bool:
        return (folder / GGUF_NAME).is_file() if llamacpp else has_weights(folder)

    if ready():
        return folder
    with open(folder / ".tunebench-weights.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel jobs: one rebuilds, the others wait
        if ready():
            return folder
        log.info("%s has no weights (it came from a hub pull): rebuilding them from its source", folder)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.weights.", dir=folder.parent))
        try:
            fresh = materialize_model(manifest["source"], staging / "model", root=root, dtype=manifest["dtype"],
                                      model_file=model_file, backend="llamacpp" if llamacpp else "transformers")
            if fresh.get("gguf_sha256") != manifest.get("gguf_sha256"):
                raise SourceError(f"the source of {folder} is another file than the one its results were made "
                                  "with (gguf_sha256 differs)", file=model_file, field="source",
                                  fix=f"rebuild it and what depends on it: snakemake --forcerun {folder}")
            for item in sorted((staging / "model").iterdir()):
                if is_weight_file(item.name):
                    os.replace(item, folder / item.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def model_input(snakemake) -> str | None:
    """A rule's `model` input with its weights in place (a folder pulled from the Hub gets them
    rebuilt from its source on first use); None for an API model."""
    folder = snakemake.input.get("model")
    if not folder:
        return None
    from tunebench.core.job import project_root

    return str(ensure_weights(folder, root=project_root(snakemake)))
