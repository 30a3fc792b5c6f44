rule model_materialize:
    """Base model -> HF folder with safetensors (a packaged GGUF is dequantized once, here)."""
    output:
        directory(LAYOUT.model_dir()),
    params:
        model=get_model_param,
    threads: config["threads"]["model"]
    resources:
        mem_mb=4000,
    log:
        LAYOUT.shared_log("model_materialize", "{model}"),
    benchmark:
        LAYOUT.shared_timing("model_materialize", "{model}")
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/model_materialize.py"


rule model_gguf_fetch:
    """Base model for llama.cpp: the GGUF file as shipped (no dequantizing), with its manifest."""
    output:
        directory(LAYOUT.model_dir(backend="llamacpp")),
    params:
        model=get_model_param,
    log:
        LAYOUT.shared_log("model_gguf_fetch", "{model}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/model_gguf_fetch.py"
