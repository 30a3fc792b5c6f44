# tunebench: did fine-tuning help, what did it break, is it worth it.
#   snakemake --cores 2 results/summary.json               the embedded default (suite demo)
#   snakemake --cores 2 --config suite=test                a few items, into results/test/
from snakemake.utils import min_version

min_version("9.0")


configfile: "configs/config.yaml"


report: "site/report/workflow.rst"


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/predict.smk"
include: "rules/lm_eval.smk"
include: "rules/gate.smk"
include: "rules/report.smk"
include: "rules/summary.smk"
include: "rules/hub.smk"


rule all:
    input:
        f"{RESULTS}/summary.json",
    default_target: True


onsuccess:
    push_after_run()
