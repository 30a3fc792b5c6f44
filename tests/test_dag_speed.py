"""tunebench.plan.dag_speed: the per-process set-up that makes Snakemake plan a large grid faster
(perf/dag_scale.py measures it), without changing what any job gets."""

import gc
import inspect

import pytest
import snakemake.script

from tunebench.plan import dag_speed


@pytest.fixture
def counted_get_source(monkeypatch):
    calls = []

    def fake(path, sourcecache, basedir=None, wildcards=None, params=None):
        calls.append((path, basedir, wildcards, params))
        return (f"{path}@{basedir}", "source", "python", True, str(path))

    monkeypatch.setattr(snakemake.script, "get_source", fake)
    return calls


def test_a_literal_script_path_is_read_once_per_cache_and_folder(counted_get_source):
    assert dag_speed.memo_script_sources()
    cache, other_cache = object(), object()
    first = snakemake.script.get_source("../scripts/a.py", cache, "/w/rules", {"task": "t1"}, {})
    again = snakemake.script.get_source("../scripts/a.py", cache, "/w/rules", {"task": "t2"}, {})
    assert first == again and len(counted_get_source) == 1
    snakemake.script.get_source("../scripts/b.py", cache, "/w/rules", {}, {})  # another script
    snakemake.script.get_source("../scripts/a.py", cache, "/other/rules", {}, {})  # another folder
    snakemake.script.get_source("../scripts/a.py", other_cache, "/w/rules", {}, {})  # another workflow
    assert len(counted_get_source) == 4


def test_a_script_path_with_wildcards_is_looked_up_per_job(counted_get_source):
    dag_speed.memo_script_sources()
    for task in ("t1", "t2", "t1"):
        snakemake.script.get_source("../scripts/{wildcards.task}.py", object(), "/w", {"task": task}, {})
    assert [c[2]["task"] for c in counted_get_source] == ["t1", "t2", "t1"]


def test_wrapping_twice_keeps_one_memo(counted_get_source):
    dag_speed.memo_script_sources()
    wrapped = snakemake.script.get_source
    assert dag_speed.memo_script_sources() and snakemake.script.get_source is wrapped


def test_tune_gc_sets_the_thresholds_and_freezes_what_exists():
    before = gc.get_threshold()
    try:
        dag_speed.tune_gc()
        assert gc.get_threshold() == dag_speed.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_cache_signatures_gives_every_plain_function_its_signature_once():
    from types import SimpleNamespace

    from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR, get_function_params, get_input_function_aux_params
    from snakemake.resources import Resource

    had = hasattr(Resource.evaluate, FUNC_OVERWRITE_PARAMS_ATTR)
    lam = lambda wildcards, input: wildcards  # noqa: E731
    disk = Resource.from_cli_expression("disk_mb", "max(2*input.size_mb, 1000)")
    rule = SimpleNamespace(input=["data/x.jsonl"], params=[lam, 5], resources={"disk_mb": disk, "mem_mb": Resource("mem_mb", 3000)})
    try:
        assert dag_speed.cache_signatures(SimpleNamespace(rules=[rule])) == 2 + (not had)
        assert list(getattr(lam, FUNC_OVERWRITE_PARAMS_ATTR)) == ["wildcards", "input"]
        # what Snakemake then passes is what it passed before: the function's own parameters
        assert get_input_function_aux_params(lam, {"input": 1, "threads": 2}) == {"input": 1}
        bound = list(get_function_params(disk.evaluate))
        assert "self" not in bound and bound == [p for p in inspect.signature(disk.evaluate).parameters]
        assert dag_speed.cache_signatures(SimpleNamespace(rules=[rule])) == 0  # once
    finally:
        if not had and hasattr(Resource.evaluate, FUNC_OVERWRITE_PARAMS_ATTR):
            delattr(Resource.evaluate, FUNC_OVERWRITE_PARAMS_ATTR)
