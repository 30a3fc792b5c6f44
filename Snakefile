# tunebench: did fine-tuning help, what did it break, is it worth it.
#   snakemake --cores 2 results/summary.json               the embedded default (suite demo)
#   snakemake --cores 2 --config suite=test                a few items, into results/test/
import sys

from snakemake.utils import min_version

from tunebench.config.layers import config_layers
from tunebench.core.errors import TunebenchError

min_version("9.17")

# Every config source, read before Snakemake merges them: malformed YAML, a key written twice (YAML
# keeps the last silently) or an empty file gets its line and a fix (Snakemake's own reader names
# neither), and an error of the merged config is later blamed on the source that set the field:
# configs/config.yaml, a --configfile, or --config on the command line.
try:
    CONFIG_LAYERS = config_layers(workflow.basedir, workflow.configfiles, workflow.config_settings.config)
except TunebenchError as exc:
    sys.exit(f"tunebench: {exc}")


configfile: "configs/config.yaml"


report: "site/report/workflow.rst"


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/data.smk"
include: "rules/leakage.smk"
include: "rules/train.smk"
include: "rules/classic.smk"
include: "rules/predict.smk"
include: "rules/batch.smk"
include: "rules/benchmarks.smk"
include: "rules/compare.smk"
include: "rules/report.smk"
include: "rules/summary.smk"
include: "rules/hub.smk"

# every rule is parsed: its functions' signatures, read once (tunebench.plan.dag_speed)
cache_signatures(workflow)


rule all:
    input:
        LAYOUT.summary(),
    default_target: True


onsuccess:
    push_after_run()
