rule model_materialize:
    """Base model -> HF folder with safetensors (a packaged GGUF is dequantized once, here)."""
    output:
        directory("resources/models/{model}"),
    params:
        spec=get_model_source,
    threads: config["threads"]["model"]
    resources:
        mem_mb=4000,
    log:
        "logs/model_materialize/{model}.log",
    benchmark:
        "logs/timings/model_materialize/{model}.tsv"
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/model_materialize.py"


rule model_gguf_fetch:
    """Base model for llama.cpp: the GGUF file as shipped (no dequantizing), with its manifest."""
    output:
        directory("resources/gguf/{model}"),
    params:
        spec=get_model_source,
    log:
        "logs/model_gguf_fetch/{model}.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/model_gguf_fetch.py"
