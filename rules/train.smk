rule adapter_train:
    """A LoRA adapter for one (model, task, train size): PEFT via TRL on CPU, or Unsloth QLoRA on a GPU."""
    input:
        model=LAYOUT.model_dir(),
        train=get_train_file,
        val=LAYOUT.prepared(split="val"),
        manifest=LAYOUT.prepared(split="manifest"),
        prompt=get_prompt_file,
    output:
        directory(LAYOUT.adapter_dir()),
    params:
        task=lambda wildcards: PROJECT.tasks[wildcards.task].to_param(*TASK_TRAIN),
        prompt=get_prompt_spec,
        training=PROJECT.training,
        training_file=PROJECT.training_file,
        # the model's chat template variables (e.g. enable_thinking: false), as prediction uses them
        chat_template_kwargs=lambda wildcards: PROJECT.models[wildcards.model].chat_template_kwargs,
        # checkpoints of an interrupted run: the rerun resumes from the last one
        work_root=lambda wildcards: LAYOUT.adapter_work(wildcards.model, f"{wildcards.task}-{wildcards.size}"),
    # the longest job and the head of the fine-tuned chain: start it first
    priority: 10
    threads: config["threads"]["train"]
    resources:
        # the job estimates its peak from the token counts and refuses, before loading the model, a run
        # that needs more (raise it with --set-resources adapter_train:mem_mb=N, or lower batch_tokens)
        mem_mb=8000,
        gpu=TRAIN_GPUS,
        runtime=240,
    log:
        LAYOUT.log("adapter_train", "{model}/{task}-{size}"),
    benchmark:
        LAYOUT.timing("adapter_train", "{model}/{task}-{size}")
    conda:
        TRAIN_ENV
    script:
        "../scripts/adapter_train.py"


rule adapter_merge:
    """Optional (ask for the folder): base + adapter merged into one model folder, for backends that
    need merged weights. snakemake results/merged/smollm2-135m-instruct+ticket_routing-128"""
    input:
        model=LAYOUT.model_dir(),
        adapter=LAYOUT.adapter_dir(),
    output:
        directory(LAYOUT.merged_dir()),
    resources:
        mem_mb=4000,
    log:
        LAYOUT.log("adapter_merge", "{model}/{task}-{size}"),
    conda:
        TRAIN_ENV
    script:
        "../scripts/adapter_merge.py"
