PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test lint demo bench create-cost clean

install:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@# An editable install leaves our modules uncompiled; with PYTHONDONTWRITEBYTECODE set they
	@# would be compiled again at every start (80 ms of CPU per command).
	$(BIN)/python -m compileall -q -f batchrun bench

test:
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff check batchrun tests bench
	$(BIN)/ruff format --check batchrun tests bench
	$(BIN)/mypy

demo:
	$(BIN)/python -m batchrun.demo

bench:
	$(BIN)/python -m compileall -q -f batchrun bench
	$(BIN)/python -m bench

create-cost:  # instructions per create under callgrind (needs valgrind): compares client builds
	$(BIN)/python -m compileall -q -f batchrun bench
	$(BIN)/python -m bench.create_cost

clean:
	rm -rf $(VENV) .batchrun demo-output bench/results
