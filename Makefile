# The first two targets are the README's first two commands; both set up everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint install clean

$(STAMP): pyproject.toml requirements-test-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# test-only, --no-deps: whisperspeech & co. for the WhisperVQ token-parity tests (they would pull triton/torchaudio)
	$(BIN)/pip install -q --no-deps -r requirements-test-nodeps.txt
	# espeak-ng: the second, cheap offline TTS voice (recipes/demo.yaml)
	command -v espeak-ng >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng)
	# GSM 06.10 for the audio-filter evaluation corpus (the PyAV wheel has no GSM encoder)
	command -v toast >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgsm-tools)
	# curl: webdataset's gopen streams hf:// shards through it (training from the Hub)
	command -v curl >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dataengine build recipes/demo.yaml --out build/demo --workers 2
	$(BIN)/dataengine query build/demo "select task, count(*) as n from samples group by task order by task"

test: $(STAMP)
	$(BIN)/ruff check dataengine tests benchmarks training
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_vq.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/eval_filters.py
	$(BIN)/python benchmarks/bench_loader.py

clean:
	rm -rf build .pytest_cache .ruff_cache
