# Did the adapter see the test? One overlap report per (training set, evaluation set); see
# tunebench.compare.leakage. A training set is `<task>-<size>`: an adapter's training file, or with
# size `full` the task's whole train split (in-context examples are drawn from it).


rule leakage_check:
    """Exact duplicates and 13-gram overlap of one training set with one evaluation set."""
    input:
        unpack(get_leakage_eval),
        train=get_train_file,
    output:
        LAYOUT.leakage(),
    params:
        eval=get_leakage_spec,
        ngram=LEAKAGE_NGRAM,  # a change of the rule reruns every check
    wildcard_constraints:
        evalset=_one_of([*PROJECT.tasks, *PROJECT.benchmarks]),
    log:
        LAYOUT.log("leakage_check", "{task}-{size}/{evalset}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/leakage_check.py"
