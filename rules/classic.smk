from tunebench.core.spec import CLASSIC
from tunebench.train.classic import SETTINGS as CLASSIC_SETTINGS


rule classic_fit:
    """The classic baseline for one (task, train size): TF-IDF + logistic regression on the training
    file every LoRA adapter of that task and size gets; its "adapter" folder is the fitted pipeline."""
    input:
        train=get_train_file,
        manifest=LAYOUT.prepared(split="manifest"),
    output:
        directory(LAYOUT.adapter_dir(CLASSIC)),
    params:
        task=lambda wildcards: PROJECT.tasks[wildcards.task].to_param("type", "labels", "auto_labels"),
        settings=CLASSIC_SETTINGS,
    resources:
        mem_mb=2000,
    log:
        LAYOUT.log("classic_fit", "{task}-{size}"),
    benchmark:
        LAYOUT.timing("classic_fit", "{task}-{size}")
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/classic_fit.py"


# results/adapters/classic/<task>-<size> also fits adapter_train's pattern (model `classic`)
ruleorder: classic_fit > adapter_train
