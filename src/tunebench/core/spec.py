"""The checked project: typed tasks, models, systems and the suite being run.

Built once per workflow parse by `tunebench.config.loader.load_project`; jobs get the parts they need
through their rule's params.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tunebench.core.layout import DATA, Layout


def _plain(value: Any) -> Any:
    """A value as Snakemake can compare it between runs (builtins only: a dataclass param is
    'unrepresentable' to Snakemake and would never trigger a rerun)."""
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Param:
    """A spec travels to a job as a rule param: the plain dict of the fields that job needs, which is
    also what makes Snakemake rerun exactly the jobs whose spec changed."""

    _TUPLES: tuple[str, ...] = ()
    _PATHS: tuple[str, ...] = ()

    def to_param(self, *names: str) -> dict[str, Any]:
        """Plain fields, all of them or the named ones (plus `name`)."""
        chosen = names and ("name", *names)
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)  # type: ignore[arg-type]
                if f.repr and (not chosen or f.name in chosen)}

    @classmethod
    def from_param(cls, param: dict[str, Any]):  # noqa: ANN206 (the subclass itself)
        """The spec back from `to_param`; fields the rule did not pass keep their defaults."""
        values = dict(param)
        for key in cls._TUPLES:
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        for key in cls._PATHS:
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)


def prompting_name(shots: int, method: str, main_method: str) -> str:
    """A condition's name: `5shot` under the task's own method, `5shot-loglik` under another."""
    return f"{shots}shot" if method == main_method else f"{shots}shot-{method}"


def parse_prompting(prompting: str) -> tuple[int, str | None]:
    """(shots, method) of a condition name; method None: the task's own."""
    shots, _, method = prompting.partition("shot")
    return int(shots), method.lstrip("-") or None


@dataclass(frozen=True)
class Task(_Param):
    """configs/tasks/<name>.yaml, checked, defaults filled (see configs/schema/task.schema.yaml)."""
    name: str
    type: str = "classification"
    description: str | None = None
    source: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)
    labels: tuple[str, ...] | None = None
    expected_rows: int | None = None
    split: dict = field(default_factory=dict)
    train_sizes: tuple[int | str, ...] = ()
    prompt: str = ""  # the template file, relative to the project root
    parser: str = "first_label"
    metrics: tuple[str, ...] = ()
    generation: dict = field(default_factory=dict)
    method: str = "generate"
    file: Path = Path()  # the task file, relative to the project root
    prompt_file: Path = field(default=Path(), repr=False, compare=False)  # resolved, for reading it
    auto_labels: bool = False  # `labels: auto`: the label set is the prepared manifest's
    label_names: tuple[str, ...] | None = None  # integer target i -> label_names[i]
    test_sample_size: int | None = None
    test_balance: bool = False
    abstain: str | None = None  # extraction: the answer that says "none in this document"
    context_window: dict | None = None  # extraction: {tokens, stride} words per window
    answer_format: str = "letter"  # multiple_choice
    execution: dict = field(default_factory=dict)  # code: {timeout_s, memory_mb}
    methods: tuple[str, ...] = ()  # side by side: the first is `method`, each other its own condition

    _TUPLES = ("labels", "train_sizes", "metrics", "label_names", "methods")
    _PATHS = ("file",)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def promptings(self, shots: list[int]) -> list[str]:
        """The task's conditions: each shot count under each method (the first method unnamed)."""
        rest = self.methods[1:] if self.methods else ()
        return [prompting_name(k, m, self.method) for k in shots for m in (self.method, *rest)]

    def with_labels(self, manifest: dict | str | Path | None) -> Task:
        """`labels: auto` resolved from the prepared manifest (split_prepare records the label set);
        `manifest`: the manifest or its path."""
        if not self.auto_labels or manifest is None:
            return self
        doc: dict = manifest if isinstance(manifest, dict) else json.loads(Path(manifest).read_text(encoding="utf-8"))
        return replace(self, labels=tuple(doc["labels"])) if doc.get("labels") else self


@dataclass(frozen=True)
class Model(_Param):
    """configs/models/<name>.yaml, checked, defaults filled (see configs/schema/model.schema.yaml)."""
    name: str
    source: dict = field(default_factory=dict)
    backend: str = "transformers"
    description: str | None = None
    dtype: str = "float32"
    chat_template: bool = True
    # extra chat template variables wherever the template is applied, e.g. {"enable_thinking": False}
    chat_template_kwargs: dict = field(default_factory=dict)
    batch_size: int = 8
    batch_tokens: int | None = None
    max_input_tokens: int = 4096
    concurrency: int = 4  # backend openai: requests in flight
    stream: bool = True  # backend openai
    file: Path = Path()  # the model file, relative to the project root

    _PATHS = ("file",)

    @property
    def trainable(self) -> bool:
        """LoRA adapters are trained on (and served from) an HF folder: transformers and vLLM models."""
        return self.backend in ("transformers", "vllm")

    @property
    def is_api(self) -> bool:
        """Served by an OpenAI-compatible endpoint: no weights here, so no training or lm-eval runs."""
        return self.backend == "openai"  # the loader lets only an api source use it


# The classic baseline: TF-IDF + logistic regression fitted on each fine-tuned classification task's
# training file (tunebench.train.classic), a system like any other, `classic+<task>-<size>`. Built in:
# no configs/models file, so the name is reserved.
CLASSIC = "classic"
CLASSIC_MODEL = Model(name=CLASSIC, source={"kind": "builtin"}, backend=CLASSIC,
                      description="TF-IDF (word 1-2-grams + char 2-5-grams) + logistic regression, scikit-learn",
                      chat_template=False, batch_size=1)


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

    @property
    def is_classic(self) -> bool:
        return self.model == CLASSIC

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
        """Base models, then one fine-tuned system per (model, fine-tuned task, train size), then the
        classic baseline per (fine-tuned classification task, train size)."""
        out = {m: System(name=m, model=m) for m in self.models}
        for model in [m for m, spec in self.models.items() if spec.trainable]:
            for task in self.config["finetune"]["tasks"]:
                for size in self.train_sizes(task):
                    name = f"{model}+{task}-{size}"
                    out[name] = System(name=name, model=model, task=task, train_size=size)
        if self.config.get("classic", {}).get("enabled", True):  # the baseline any adapter has to beat
            for task in self.config["finetune"]["tasks"]:
                if self.tasks[task].type == "classification":
                    for size in self.train_sizes(task):
                        name = f"{CLASSIC}+{task}-{size}"
                        out[name] = System(name=name, model=CLASSIC, task=task, train_size=size)
        return out

    def model(self, name: str) -> Model:
        """A system's model: a configured one, or the built-in classic baseline."""
        return CLASSIC_MODEL if name == CLASSIC else self.models[name]

    def model_dir(self, name: str) -> str | None:
        """Where a model's weights live: an HF folder (transformers, vLLM), the GGUF as shipped
        (llama.cpp), none for an API model."""
        spec = self.models[name]
        return None if spec.is_api else Layout.model_dir(name, spec.backend)

    @property
    def layout(self) -> Layout:
        return Layout(self.results_dir, self.suite.get("data_dir", DATA).rstrip("/"))

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
        """Hash of everything configured: config, task and model specs, prompt templates (not `hub` or `budget`)."""
        blob = json.dumps(
            {
                # where results are kept, and what a run may cost, are not what they are
                "config": {k: v for k, v in self.config.items() if k not in ("hub", "budget")},
                "tasks": {n: t.to_param() for n, t in sorted(self.tasks.items())},
                "models": {n: m.to_param() for n, m in sorted(self.models.items())},
                "prompts": {n: p for n, p in sorted(self.prompts.items())},
                "benchmarks": {n: b for n, b in sorted(self.benchmark_specs.items())},
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()
