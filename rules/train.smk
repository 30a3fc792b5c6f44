rule adapter_train:
    """A LoRA adapter for one (model, task, train size): PEFT via TRL on CPU, or Unsloth QLoRA on a GPU."""
    input:
        model="resources/models/{model}",
        train=get_train_file,
        val="data/prepared/{task}/val.jsonl",
        prompt=get_prompt_file,
    output:
        directory(f"{RESULTS}/adapters/{{model}}/{{task}}-{{size}}"),
    params:
        training=PROJECT.training,
        training_file=PROJECT.training_file,
        # checkpoints of an interrupted run: the rerun resumes from the last one
        work_root=lambda wildcards: f"{RESULTS}/adapters/.work/{wildcards.model}/{wildcards.task}-{wildcards.size}",
    # the longest job and the head of the fine-tuned chain: start it first
    priority: 10
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        gpu=TRAIN_GPUS,
        runtime=240,
    log:
        f"{RESULTS}/logs/adapter_train/{{model}}/{{task}}-{{size}}.log",
    benchmark:
        f"{RESULTS}/timings/adapter_train/{{model}}/{{task}}-{{size}}.tsv"
    conda:
        TRAIN_ENV
    script:
        "../scripts/adapter_train.py"


rule adapter_merge:
    """Optional (ask for the folder): base + adapter merged into one model folder, for backends that
    need merged weights. snakemake results/merged/smollm2-135m-instruct+ticket_routing-128"""
    input:
        model="resources/models/{model}",
        adapter=f"{RESULTS}/adapters/{{model}}/{{task}}-{{size}}",
    output:
        directory(f"{RESULTS}/merged/{{model}}+{{task}}-{{size}}"),
    resources:
        mem_mb=4000,
    log:
        f"{RESULTS}/logs/adapter_merge/{{model}}/{{task}}-{{size}}.log",
    conda:
        TRAIN_ENV
    script:
        "../scripts/adapter_merge.py"
