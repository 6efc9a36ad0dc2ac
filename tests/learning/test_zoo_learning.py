"""rl-zoo's own ppo.yml, read as it is by `pgrl train --config`: CartPole-v1 and Pendulum-v1 reach their thresholds."""

from __future__ import annotations

import pytest

from pgrl import zoo
from pgrl.runs import train_run

ZOO_DIR = zoo.rl_zoo_hyperparams_dir()
ZOO_MISSING = "rl_zoo3 is not installed; make install brings it (pip install --no-deps rl_zoo3==2.9.2)"
pytestmark = pytest.mark.learning


@pytest.mark.parametrize(("env_id", "seed", "threshold", "episodes"), [
    ("CartPole-v1", 0, 475.0, 20),
    ("Pendulum-v1", 0, -200.0, 20),
])
def test_zoo_ppo_file_trains_to_threshold(tmp_path, env_id, seed, threshold, episodes):
    assert ZOO_DIR is not None, ZOO_MISSING
    _, model, summary = train_run("ppo", env_id, seed=seed, config_file=ZOO_DIR / "ppo.yml", out=tmp_path / "run",
                                  progress_bar=False, eval_episodes=episodes, device="cpu")
    assert model.config.n_timesteps == 100_000  # rl-zoo's budget for both, from the file
    assert summary["eval_return_mean"] >= threshold, summary
