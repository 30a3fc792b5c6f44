# API models with `batch: true` (source of configs/models/<name>.yaml): each cell goes through
# OpenAI's Batch API as two jobs. api_batch_submit uploads the cell's unanswered requests and
# writes a receipt; api_batch_collect waits for that batch and writes the cell's predictions in
# predictions_generate's format (it wins over predictions_generate for these systems, ruleorder
# below), so scoring and the summary read them unchanged. A kill after submit keeps the receipt:
# the rerun collects the same batch and never submits again while the receipt stands.

BATCH_SYSTEMS = [name for name, model in PROJECT.models.items() if model.is_api and model.source.get("batch")]


rule api_batch_submit:
    """One cell's unanswered requests, uploaded and submitted as a batch; its receipt."""
    input:
        train=LAYOUT.prepared(split="train"),
        test=LAYOUT.prepared(split="test"),
        manifest=LAYOUT.prepared(split="manifest"),
        prompt=get_prompt_file,
    output:
        receipt=LAYOUT.under("batches", "{system}", "{task}", "{prompting}.json"),
        requests=LAYOUT.under("batches", "{system}", "{task}", "{prompting}.requests.jsonl"),
    wildcard_constraints:
        system=_one_of(BATCH_SYSTEMS),
    params:
        task=get_task_predict,
        prompt=get_prompt_spec,
        model=get_system_model_param,  # its source too: batch_poll_s
        shots=get_shots,
        method=get_method,
        fewshot_seed=config["prompting"]["fewshot_seed"],
        max_items=MAX_ITEMS,
    resources:
        mem_mb=1000,
    log:
        LAYOUT.log("api_batch_submit", "{system}/{task}/{prompting}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/api_batch.py"


rule api_batch_collect:
    """The submitted batch's answers, once it is done: the cell's predictions and meta."""
    input:
        receipt=rules.api_batch_submit.output.receipt,
        train=LAYOUT.prepared(split="train"),
        test=LAYOUT.prepared(split="test"),
        manifest=LAYOUT.prepared(split="manifest"),
        prompt=get_prompt_file,
    output:
        rows=LAYOUT.prediction_rows(),
        meta=LAYOUT.prediction_meta(),
    wildcard_constraints:
        system=_one_of(BATCH_SYSTEMS),
    params:
        task=get_task_predict,
        prompt=get_prompt_spec,
        model=get_system_model_param,  # its source too: batch_poll_s
        shots=get_shots,
        method=get_method,
        fewshot_seed=config["prompting"]["fewshot_seed"],
        max_items=MAX_ITEMS,
    resources:
        mem_mb=1000,
    log:
        LAYOUT.log("api_batch_collect", "{system}/{task}/{prompting}"),
    benchmark:
        LAYOUT.timing("api_batch_collect", "{system}/{task}/{prompting}")
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/api_batch.py"


ruleorder: api_batch_collect > predictions_generate
