"""Where every file of a run lives: the one place that knows the on-disk layout.

Rules build their output patterns from it (the defaults are Snakemake wildcards, so
`Layout("results").prediction_rows()` is `results/predictions/{system}/{task}/{prompting}.jsonl`),
and the Hub sync and the jobs ask it for concrete paths. Shared folders (prepared data, model
weights) sit outside any suite's results folder, so suites reuse them; everything a suite produces
sits under its `results_dir`.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA = "data"  # raw and prepared task data (<data>/raw, <data>/prepared), shared by suites
MODELS = "resources/models"  # HF folders (transformers, vLLM)
GGUF = "resources/gguf"  # GGUF files as shipped (llama.cpp)
API_CACHE = "resources/api_cache"
NLTK = "resources/nltk_data"  # IFBench's tokenizer data, written offline
LOGS = "logs"  # logs of the shared (suite-independent) jobs
BASELINES = "baselines"
MERGED = "merged"  # base + adapter folders built on request: rebuilt, never synced


@dataclass(frozen=True)
class Layout:
    results: str = "results"
    # a suite whose task_overrides change a task's data keeps it in a data folder of its own, so it
    # never overwrites (and so invalidates) the data every other suite shares
    data: str = DATA

    # shared by the suites with the same data folder ------------------------------------------
    def raw(self, task: str = "{task}") -> str:
        return f"{self.data}/raw/{task}"

    def prepared(self, task: str = "{task}", split: str = "train") -> str:
        """`split` is train, val, test, train-<n> (a training cap) or manifest."""
        return f"{self.prepared_dir(task)}/{split}.{'json' if split == 'manifest' else 'jsonl'}"

    def prepared_dir(self, task: str = "{task}") -> str:
        return f"{self.data}/prepared/{task}"

    # shared by every suite -------------------------------------------------------------------
    @staticmethod
    def model_dir(model: str = "{model}", backend: str = "transformers") -> str:
        return f"{GGUF if backend == 'llamacpp' else MODELS}/{model}"

    @staticmethod
    def api_cache(model: str) -> str:
        """Answers an API model already gave: a rerun after a failure pays for the rest only."""
        return f"{API_CACHE}/{model}"

    @staticmethod
    def shared_log(rule: str, name: str) -> str:
        return f"{LOGS}/{rule}/{name}.log"

    @staticmethod
    def shared_timing(rule: str, name: str) -> str:
        return f"{LOGS}/timings/{rule}/{name}.tsv"

    @staticmethod
    def baseline(system: str = "{system}") -> str:
        return f"{BASELINES}/{system}.json"

    # one suite's results ------------------------------------------------------------------------
    def under(self, *parts: str) -> str:
        return "/".join((self.results, *parts))

    def prediction_rows(self, system: str = "{system}", task: str = "{task}", prompting: str = "{prompting}") -> str:
        return self.under("predictions", system, task, f"{prompting}.jsonl")

    def prediction_meta(self, system: str = "{system}", task: str = "{task}", prompting: str = "{prompting}") -> str:
        return self.under("predictions", system, task, f"{prompting}.meta.json")

    def scores_dir(self, system: str | None = None) -> str:
        """Every system's score records, or one system's (one folder per task or benchmark)."""
        return self.under("scores", *([system] if system else []))

    def comparisons_dir(self) -> str:
        return self.under("comparisons")

    def task_score(self, system: str = "{system}", task: str = "{task}", prompting: str = "{prompting}") -> str:
        return self.under("scores", system, task, f"{prompting}.json")

    def benchmark_score(self, system: str = "{system}", benchmark: str = "{benchmark}") -> str:
        return self.under("scores", system, benchmark, "lm_eval.json")

    def lm_eval_dir(self, system: str = "{system}", benchmark: str = "{benchmark}") -> str:
        return self.under("lm_eval", system, benchmark)

    def lm_eval_cache(self, system: str = "{system}", benchmark: str = "{benchmark}") -> str:
        """The request cache of a stalled or failed run, so a rerun generates only what is missing."""
        return self.under("lm_eval", ".resume", system, benchmark)

    def adapter_dir(self, model: str = "{model}", adapter: str = "{task}-{size}") -> str:
        return self.under("adapters", model, adapter)

    def adapter_work(self, model: str = "{model}", adapter: str = "{task}-{size}") -> str:
        """Checkpoints of an interrupted training run: the rerun resumes from the last one."""
        return self.under("adapters", ".work", model, adapter)

    def merged_dir(self, model: str = "{model}", adapter: str = "{task}-{size}") -> str:
        return self.under(MERGED, f"{model}+{adapter}")

    def comparison(self, system: str = "{system}", ext: str = "json") -> str:
        return self.under("comparisons", f"{system}.{ext}")

    def leakage(self, train_set: str = "{task}-{size}", eval_set: str = "{evalset}") -> str:
        """One (training set, evaluation set) overlap report: `<task>-<size>` (an adapter's training
        file; size `full`: the task's whole train split) against a task's test split or a benchmark."""
        return self.under("leakage", train_set, f"{eval_set}.json")

    def agreement(self, a: str = "{a}", b: str = "{b}") -> str:
        return self.under("agreement", f"{a}__{b}.json")

    def collected(self) -> str:
        return self.under("summary", "collected.json")

    def summary(self, ext: str = "json") -> str:
        return self.under(f"summary.{ext}")

    def plot(self, name: str) -> str:
        return self.under("plots", name)

    def site_dir(self) -> str:
        return self.under("site")

    def dashboard(self) -> str:
        return self.under("dashboard.html")

    def log(self, rule: str, name: str | None = None) -> str:
        """One job's log; `name` None for a rule with one job per run."""
        return self.under("logs", *((rule, f"{name}.log") if name else (f"{rule}.log",)))

    def timing(self, rule: str, name: str) -> str:
        """Snakemake's `benchmark:` file (wall time, memory) of one job."""
        return self.under("timings", rule, f"{name}.tsv")
