"""A short calibration of a model no earlier run has measured: load it, answer a few prompts with a
few new tokens, and keep the timing (results/<suite>/plan/probe-<model>.json) for the next plan.

Only for models whose weights are already here (a probe never downloads, and never calls an API: an
API model's time comes from records or the default)."""

from __future__ import annotations

import time
from pathlib import Path

from tunebench.core.atomic import read_json, write_json

PROBE_PROMPTS = ("Route this ticket: my parcel never arrived and I want a refund.",
                 "Which product is this about: the app crashes when I open settings.",
                 "Classify: the invoice shows a charge I did not make.")
PROBE_TOKENS = 8


def probe_file(results_dir: str | Path, model: str) -> Path:
    return Path(results_dir) / "plan" / f"probe-{model}.json"


def calibrate(model_spec, model_dir: str | Path, out: str | Path, threads: int = 1) -> dict:
    """Load the model through its backend and time PROBE_TOKENS new tokens on each probe prompt;
    the load, the mean seconds per prompt and the token count go to `out`."""
    from tqdm import tqdm

    from tunebench.backends import BackendContext, backend_for

    ctx = BackendContext(model=model_spec, model_dir=Path(model_dir), threads=threads, max_new_tokens=PROBE_TOKENS)
    with tqdm(total=len(PROBE_PROMPTS) + 1, desc=f"probe {model_spec.name}", unit="step") as bar:
        t0 = time.perf_counter()
        backend = backend_for(model_spec.backend).from_context(ctx)
        load_s = time.perf_counter() - t0
        bar.update()
        try:
            t0 = time.perf_counter()
            for prompt in PROBE_PROMPTS:
                backend.complete([[{"role": "user", "content": prompt}]], max_new_tokens=PROBE_TOKENS, stop=[],
                                 progress=False)
                bar.update()
            item_s = (time.perf_counter() - t0) / len(PROBE_PROMPTS)
        finally:
            backend.close()
    doc = {"model": model_spec.name, "backend": model_spec.backend, "load_s": round(load_s, 3),
           "item_s": round(item_s, 4), "tokens": PROBE_TOKENS, "prompts": len(PROBE_PROMPTS),
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(out, doc)
    return doc


def prober(project, root: str | Path, run: bool = True):
    """model name -> its calibration: a stored probe file, else (when `run`) a new probe of local
    weights; None where neither is possible."""
    root = Path(root)

    def probe(model: str) -> dict | None:
        out = root / probe_file(project.results_dir, model)
        if out.is_file():
            return read_json(out)
        spec = project.models.get(model)
        model_dir = project.model_dir(model) if spec is not None else None
        if not run or spec is None or spec.is_api or not model_dir or not (root / model_dir).exists():
            return None
        return calibrate(spec, root / model_dir, out)

    return probe
