# The first two targets are the README's first two commands; both set up everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dataengine build recipes/demo.yaml --out build/demo --workers 2
	$(BIN)/dataengine query build/demo "select task, count(*) as n from samples group by task order by task"

test: $(STAMP)
	$(BIN)/ruff check dataengine tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_build.py

clean:
	rm -rf build .pytest_cache .ruff_cache
