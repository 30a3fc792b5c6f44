"""The checked project: typed tasks, models, systems and the suite being run.

Built once per workflow parse by `tunebench.core.loader.load_project`; jobs get the parts they need
through their rule's params.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Task:
    name: str
    type: str
    source: dict
    fields: dict
    labels: tuple[str, ...] | None
    expected_rows: int | None
    split: dict
    train_sizes: tuple
    prompt_file: Path
    parser: str
    metrics: tuple[str, ...]
    generation: dict
    file: Path
    spec: dict = field(repr=False)
    method: str = "generate"

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


@dataclass(frozen=True)
class Model:
    name: str
    source: dict
    backend: str
    dtype: str
    chat_template: bool
    batch_size: int
    max_input_tokens: int
    file: Path
    spec: dict = field(repr=False)

    @property
    def trainable(self) -> bool:
        """LoRA adapters are trained on (and served from) an HF folder: transformers and vLLM models."""
        return self.backend in ("transformers", "vllm")

    @property
    def is_api(self) -> bool:
        """Served by an OpenAI-compatible endpoint: no weights here, so no training or lm-eval runs."""
        return self.source["kind"] == "api"


@dataclass(frozen=True)
class System:
    """What is evaluated: a base model, or a base model with a LoRA adapter for one task."""
    name: str
    model: str
    task: str | None = None  # the adapter's training task
    train_size: int | str | None = None

    @property
    def adapter(self) -> str | None:
        return f"{self.task}-{self.train_size}" if self.task else None

    @classmethod
    def parse(cls, name: str) -> System:
        """`<model>` or `<model>+<task>-<size>` (model and task names cannot contain '+')."""
        model, _, adapter = name.partition("+")
        if not adapter:
            return cls(name=name, model=model)
        task, _, size = adapter.rpartition("-")
        return cls(name=name, model=model, task=task, train_size=int(size) if size.isdigit() else size)


@dataclass
class Project:
    root: Path
    config: dict
    config_file: str
    suite_name: str
    suite: dict
    tasks: dict[str, Task]
    models: dict[str, Model]
    prompts: dict[str, dict]
    training: dict | None = None  # configs/training/<finetune.training>.yaml, checked
    pricing: dict | None = None  # configs/pricing.yaml (or config `pricing`), checked
    # configs/benchmarks/<name>.yaml of every benchmark the config lists, checked, defaults filled,
    # without the fields that only document it (name, description)
    benchmark_specs: dict[str, dict] = field(default_factory=dict)

    @property
    def training_file(self) -> str:
        return f"configs/training/{self.config['finetune']['training']}.yaml"

    def train_sizes(self, task: str) -> list:
        sizes = self.suite.get("train_sizes")
        return list(sizes if sizes is not None else self.tasks[task].train_sizes)

    @property
    def systems(self) -> dict[str, System]:
        """Base models, then one fine-tuned system per (model, fine-tuned task, train size)."""
        out = {m: System(name=m, model=m) for m in self.models}
        for model in [m for m, spec in self.models.items() if spec.trainable]:
            for task in self.config["finetune"]["tasks"]:
                for size in self.train_sizes(task):
                    name = f"{model}+{task}-{size}"
                    out[name] = System(name=name, model=model, task=task, train_size=size)
        return out

    def model_dir(self, name: str) -> str | None:
        """Where a model's weights live: an HF folder (transformers, vLLM), the GGUF as shipped
        (llama.cpp), none for an API model."""
        spec = self.models[name]
        if spec.is_api:
            return None
        return f"resources/gguf/{name}" if spec.backend == "llamacpp" else f"resources/models/{name}"

    @property
    def results_dir(self) -> str:
        return self.suite["results_dir"].rstrip("/")

    @property
    def shots(self) -> list[int]:
        return list(self.config["prompting"]["shots"])

    @property
    def benchmarks(self) -> dict[str, dict]:
        """The benchmarks this suite runs (all configured ones unless the suite lists some)."""
        chosen = self.suite.get("benchmarks")
        every = self.benchmark_specs
        return {name: every[name] for name in (every if chosen is None else chosen)}

    def benchmark_limit(self, name: str) -> int | float | None:
        cap = self.suite.get("benchmark_limit")
        return cap if cap is not None else self.benchmarks[name]["limit"]

    @property
    def promptings(self) -> list[str]:
        return [f"{k}shot" for k in self.shots]

    def fingerprint(self) -> str:
        """Hash of everything configured: config, task and model specs, prompt templates (not `hub`:
        where results are kept is not what they are)."""
        blob = json.dumps(
            {
                "config": {k: v for k, v in self.config.items() if k != "hub"},
                "tasks": {n: t.spec for n, t in sorted(self.tasks.items())},
                "models": {n: m.spec for n, m in sorted(self.models.items())},
                "prompts": {n: p for n, p in sorted(self.prompts.items())},
                "benchmarks": {n: b for n, b in sorted(self.benchmark_specs.items())},
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()
