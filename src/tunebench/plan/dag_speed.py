"""What the workflow does, while it is parsed, so that Snakemake plans a large grid in less time.

A `snakemake -n` of 20 models x 12 tasks x 4 conditions + 10 benchmarks (13,577 jobs; see
perf/dag_scale.py) spends almost all of its time in Snakemake's own per-job work, not in the
workflow's input and params functions (about 2 % of a profile). Two parts of that work do not need to
be paid per job:

- the cyclic garbage collector: building the DAG allocates millions of long-lived objects (jobs, file
  names, wildcards) and no garbage cycles to speak of, yet each full collection walks all of them
  again, a fifth of the CPU time of a dry run;
- reading each job's `script:` file: Snakemake checks, for every job, that its script is readable by
  reading the file again through its source cache (a URI parse, a retry wrapper, an open): an eighth of
  a dry run, for the dozen scripts of the workflow.

- reading each function's signature: Snakemake reads an input, params or resources function's
  signature (inspect.signature) at each call, to know which arguments it takes, and a resource's
  evaluation goes through two such calls even for a constant (rules/common.smk gives its own `get_*`
  functions theirs; cache_signatures does the same for the rest, once the rules are parsed).

None of this changes what any job computes: all of it is set up once per Snakemake process.
"""

from __future__ import annotations

import gc
import inspect
import types
from typing import Any

# gen0 after 50,000 net allocations (CPython's default 700 runs a collection every few jobs), and the
# older generations rarely: the DAG's objects live until the process ends
GC_THRESHOLDS = (50_000, 50, 1000)


def tune_gc() -> None:
    """Everything imported and parsed so far (modules, the project, the rules) is never collected: no
    later collection walks it again, and collections run less often while the DAG is built."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def memo_script_sources() -> bool:
    """Snakemake's lookup of a job's script (snakemake.script.get_source), answered once per script,
    source cache and rule folder instead of once per job. Only a literal path is memoized: a path with
    `{wildcards}` or `{params}` in it can name another file for each job. Returns whether it applied
    (False when Snakemake has no such function to wrap)."""
    try:
        import snakemake.script as script
    except ImportError:  # not inside Snakemake: nothing to do
        return False
    original = getattr(script, "get_source", None)
    if original is None or getattr(original, "_tunebench_memo", False):
        return original is not None
    memo: dict[tuple[int, str, str], Any] = {}

    def get_source(path: Any, sourcecache: Any, basedir: Any = None, wildcards: Any = None,
                   params: Any = None) -> Any:
        if not isinstance(path, str) or "{" in path:
            return original(path, sourcecache, basedir, wildcards, params)
        key = (id(sourcecache), path, str(basedir))
        if key not in memo:
            memo[key] = original(path, sourcecache, basedir, wildcards, params)
        return memo[key]

    get_source._tunebench_memo = True  # type: ignore[attr-defined]
    script.get_source = get_source
    return True


def _cache_signature(func: Any) -> bool:
    from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR, overwrite_function_params

    if not isinstance(func, types.FunctionType) or hasattr(func, FUNC_OVERWRITE_PARAMS_ATTR):
        return False
    overwrite_function_params(func, inspect.signature(func).parameters)
    return True


def cache_signatures(workflow: Any) -> int:
    """Every rule's plain functions (lambdas of params, the evaluators of resources, the defaults'
    among them) carry their signature, as Snakemake's own wrappers do (the attribute
    snakemake.common.get_function_params reads first), and so does Resource.evaluate, through which
    Snakemake passes every resource of every job. Call it once every rule is parsed. Returns how many
    functions it gave a signature."""
    try:  # Snakemake's internals (the pinned 9.x): a release without them plans as it always did
        from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR, overwrite_function_params
        from snakemake.resources import Resource
    except ImportError:
        return 0
    done = 0
    evaluate = Resource.evaluate
    if not hasattr(evaluate, FUNC_OVERWRITE_PARAMS_ATTR):  # read through the bound method: no `self`
        params = {k: v for k, v in inspect.signature(evaluate).parameters.items() if k != "self"}
        overwrite_function_params(evaluate, types.MappingProxyType(params))
        done += 1
    for rule in workflow.rules:
        for item in [*rule.input, *rule.params]:
            done += _cache_signature(getattr(item, "callable", None) or item)
        resources = getattr(rule, "resources", None) or {}
        for name in resources:
            done += _cache_signature(getattr(resources[name], "_evaluator", None))
    return done
