# pgrl: every set-up step lives here, so a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pgrl-installed
# torch is pinned here (pyproject keeps a range): 2.13.0 resolves to the local CPU wheel, while
# an open `torch` requirement would pull the newest release with several GB of CUDA packages.
TORCH  := torch==2.13.0
PYTEST_ARGS ?=
# Every extra is installed for the tests, so CI exercises each of them (`make test` also builds the docs site).
EXTRAS := dev,bench,mujoco,box2d,ray,atari,record,export,docs,tune,wandb
# rl-zoo's hyperparameter files for the rl-zoo tests (pyproject.toml, "tune"); its own requirements are not needed.
RL_ZOO := rl_zoo3==2.9.2

.PHONY: install demo browser docs test test-long test-all bench bench-learning bench-compare bench-control bench-seeds bench-ray bench-atari bench-masking bench-recurrent bench-jax bench-cli lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]" "$(TORCH)"
	$(BIN)/python -m pip install --quiet --no-deps "$(RL_ZOO)"
	$(BIN)/python -m pgrl.fast  # compile the fast path's kernels into numba's cache once, not in the first run
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pgrl train ppo CartPole-v1 --eval-episodes 100

# Headless Chromium + chromedriver (Debian packages) for tests/integration/test_report_browser.py.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

# The docs site (MkDocs + Material + mkdocstrings) into site/; --strict: a broken link or a missing
# API reference fails the build. Offline: no web fonts or scripts (see mkdocs.yml).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict -d site

# Unit and integration tests (every extra included).  The learning tests (training to return
# thresholds) and the few integration tests of a minute or more are `make test-long`; CI
# (.ci/run) runs both, `make test-all` too.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "not learning and not slow" $(PYTEST_ARGS)

test-long: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "learning or slow" $(PYTEST_ARGS)

test-all: test test-long

# Side-by-side speed against Stable-Baselines3 (docs/speed.md); about 10 minutes.
# The pgrl[bench] extra (Stable-Baselines3) is part of the install, so its smoke test runs in CI.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.speed --seeds 5

# Steps and seconds each preset needs to solve CartPole-v1 / Pendulum-v1 (docs/results.md).
bench-learning: $(STAMP)
	$(BIN)/python -m benchmarks.learning_table --seeds 0

# Sample efficiency vs wall-clock for every algorithm on CartPole-v1 (table + PNG).
bench-compare: $(STAMP)
	$(BIN)/python -m benchmarks.compare_cartpole --seeds 3 --out runs/compare_cartpole

# PPO steps/s in-process vs through Ray with 1 and 2 workers, same total envs (docs/distributed.md).
bench-ray: $(STAMP)
	$(BIN)/python -m benchmarks.ray_scaling

# Continuous control and Box2D table (docs/results.md, "Continuous control"): PPO on MuJoCo and LunarLander at
# 1M steps, Pendulum for PPO/TRPO/A2C, 3 seeds, SB3 ratio; hours on 2 cores. Results go to
# runs/bench_control/ one JSON per run; `--only ENV --seeds 0` runs a part.
bench-control: $(STAMP)
	$(BIN)/python -m benchmarks.control

# Masked PPO vs sb3-contrib's MaskablePPO, steps/s and steps to threshold (docs/environments.md, "Action masks"); ~5 minutes.
bench-masking: $(STAMP)
	$(BIN)/python -m benchmarks.masking --repeats 2

# PPO with an LSTM policy vs sb3-contrib's RecurrentPPO on CartPoleNoVel-v1 (docs/environments.md, "Memory"); ~40 minutes.
bench-recurrent: $(STAMP)
	$(BIN)/python -m benchmarks.recurrent --repeats 2 --seeds 2

# pgrl vs rejax (a compiled JAX PPO, PureJaxRL's design) vs SB3 on PureJaxRL's CartPole config, and
# the 1024-env wide config (docs "Speed"); ~15 minutes.  The JAX side gets its own venv, .venv-jax
# (jax CPU, rejax, gymnax 0.0.9: gymnax 1.x's step returns six values where rejax 0.1.3 unpacks five).
JAX_VENV := .venv-jax
$(JAX_VENV)/.installed:
	test -x $(JAX_VENV)/bin/python || $(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --quiet "jax==0.10.2" "jaxlib==0.10.2" "rejax==0.1.3" "gymnax==0.0.9"
	touch $@

bench-jax: $(STAMP) $(JAX_VENV)/.installed
	$(BIN)/python -m benchmarks.jax_compare --jax-python $(JAX_VENV)/bin/python --repeats 3 --jax-cache $(JAX_VENV)/compile-cache

# `pgrl train ppo CartPole-v1` vs SB3 with rl-zoo's settings, whole process each, train and evaluation
# (docs/speed.md, "Fast path"); about 3 minutes.
bench-cli: $(STAMP)
	$(BIN)/python -m benchmarks.cli_compare --repeats 3

# K seeds of PPO trained as one batch vs one seed alone (docs/speed.md, "Many seeds at once"); ~10 minutes.
bench-seeds: $(STAMP)
	$(BIN)/python -m benchmarks.batched_seeds --seeds 8 --repeats 3

# PPO on ALE/Breakout-v5 and ALE/Pong-v5 with rl-zoo's Atari preset, 1e7 env steps (4e7 frames) each:
# days on 2 CPU cores, hours on a GPU (DEVICE=cuda). Resumable: rerunning continues from the last
# checkpoint. Results (results.json, atari_curves.png, one run folder per game) go to runs/bench_atari/.
DEVICE ?= auto
bench-atari: $(STAMP)
	$(BIN)/python -m benchmarks.atari --device $(DEVICE) --out runs/bench_atari

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs site .pytest_cache
