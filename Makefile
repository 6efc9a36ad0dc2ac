# pgrl: every set-up step lives here, so a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pgrl-installed
# torch is pinned here (pyproject keeps a range): 2.13.0 resolves to the local CPU wheel, while
# an open `torch` requirement would pull the newest release with several GB of CUDA packages.
TORCH  := torch==2.13.0
PYTEST_ARGS ?=
# Every extra is installed for the tests, so CI exercises each of them (see README "Install").
EXTRAS := dev,bench,mujoco,box2d,ray,atari,tune,wandb
# rl-zoo's hyperparameter files for the rl-zoo tests (pyproject.toml, "tune"); its own requirements are not needed.
RL_ZOO := rl_zoo3==2.9.2

.PHONY: install demo browser test test-long test-all bench bench-learning bench-compare bench-control bench-seeds bench-ray bench-atari bench-masking bench-recurrent lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]" "$(TORCH)"
	$(BIN)/python -m pip install --quiet --no-deps "$(RL_ZOO)"
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

# Unit and integration tests (every extra included).  The learning tests (training to return
# thresholds) and the few integration tests of a minute or more are `make test-long`; CI
# (.ci/run) runs both, `make test-all` too.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "not learning and not slow" $(PYTEST_ARGS)

test-long: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "learning or slow" $(PYTEST_ARGS)

test-all: test test-long

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

# PPO steps/s in-process vs through Ray with 1 and 2 workers, same total envs (README "Distributed (Ray)").
bench-ray: $(STAMP)
	$(BIN)/python -m benchmarks.ray_scaling

# Continuous control and Box2D table (README "Continuous control"): PPO on MuJoCo and LunarLander at
# 1M steps, Pendulum for PPO/TRPO/A2C, 3 seeds, SB3 ratio; hours on 2 cores. Results go to
# runs/bench_control/ one JSON per run; `--only ENV --seeds 0` runs a part.
bench-control: $(STAMP)
	$(BIN)/python -m benchmarks.control

# Masked PPO vs sb3-contrib's MaskablePPO, steps/s and steps to threshold (README "Action masks"); ~5 minutes.
bench-masking: $(STAMP)
	$(BIN)/python -m benchmarks.masking --repeats 2

# PPO with an LSTM policy vs sb3-contrib's RecurrentPPO on CartPoleNoVel-v1 (README "Memory"); ~40 minutes.
bench-recurrent: $(STAMP)
	$(BIN)/python -m benchmarks.recurrent --repeats 2 --seeds 2

# K seeds of PPO trained as one batch vs one seed alone (README "Many seeds at once"); ~10 minutes.
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
	rm -rf $(VENV) runs .pytest_cache
