# One command runs the main job, one runs the tests; both build .venv first (idempotent).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv run study profile test lint gpu-check dry-run-paper clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## The Snakemake profile of `make run`: profiles/local where torch sees a CUDA device, profiles/cpu otherwise
## (one thread per job, as many jobs as cores). PROFILE=profiles/... chooses.
PROFILE ?= profiles/$(shell $(BIN)/python -c 'import torch; print("local" if torch.cuda.is_available() else "cpu")')

## The main job: the whole workflow on the embedded glyph dataset (config/config.yaml), then the HTML report.
run: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --profile $(PROFILE)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --profile $(PROFILE) --report results/report.html

## The proxy validity study (the config's `study` block: its size), then the HTML report with its section.
study: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --profile $(PROFILE) study
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --profile $(PROFILE) study --report results/study-report.html

## Print the profile `make run` uses here.
profile: $(STAMP)
	@echo $(PROFILE)

## The test suite, on PYTEST_WORKERS processes (most tests hold one thread each; 2 suits a 2-core machine).
PYTEST_WORKERS ?= 2
test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

## On a GPU machine: the CUDA tests, then benchmarks/gpu_check.py (correctness on CUDA, the paper-size search,
## training throughput, the 1000-task evaluation; gpu-check.json). Without CUDA: one line, exit status 2.
gpu-check: $(STAMP)
	@$(BIN)/python benchmarks/gpu_check.py --check-cuda
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -m cuda
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

## Workflow lint and format checks.
lint: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/

clean:
	rm -rf results logs .snakemake
