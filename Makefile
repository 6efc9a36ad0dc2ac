# pgrl: every set-up step lives here, so a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pgrl-installed
# torch is pinned here (pyproject keeps a range): 2.13.0 resolves to the local CPU wheel, while
# an open `torch` requirement would pull the newest release with several GB of CUDA packages.
TORCH  := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test test-fast bench bench-learning bench-compare lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]" "$(TORCH)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pgrl train ppo CartPole-v1 --eval-episodes 100

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not learning" $(PYTEST_ARGS)

# Side-by-side speed against Stable-Baselines3 (README "Speed"); about 10 minutes.
# The pgrl[bench] extra (Stable-Baselines3) is part of the install, so its smoke test runs in CI.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.speed --seeds 5

# Steps and seconds each preset needs to solve CartPole-v1 / Pendulum-v1 (README "Learning").
bench-learning: $(STAMP)
	$(BIN)/python -m benchmarks.learning_table --seeds 0

# Sample efficiency vs wall-clock for every algorithm on CartPole-v1 (table + PNG).
bench-compare: $(STAMP)
	$(BIN)/python -m benchmarks.compare_cartpole --seeds 3 --out runs/compare_cartpole

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
