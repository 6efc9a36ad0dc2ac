"""rl-zoo's own ppo.yml, read as it is by `pgrl train --config`: CartPole-v1 and Pendulum-v1 reach their thresholds."""

from __future__ import annotations

import pytest

from pgrl import evaluate_policy, zoo
from pgrl.runs import train_run

ZOO_DIR = zoo.rl_zoo_hyperparams_dir()
ZOO_MISSING = "rl_zoo3 is not installed; make install brings it (pip install --no-deps rl_zoo3==2.9.2)"
pytestmark = pytest.mark.learning


# Greedy returns on Gymnasium's own env (as rl-zoo and benchmarks/control.py evaluate), 100 episodes:
# Pendulum's episodes spread widely (about -0 to -400), so fewer would be noise around the threshold.
@pytest.mark.parametrize(("env_id", "seed", "threshold"), [
    ("CartPole-v1", 0, 475.0),
    ("Pendulum-v1", 0, -200.0),
])
def test_zoo_ppo_file_trains_to_threshold(tmp_path, env_id, seed, threshold):
    assert ZOO_DIR is not None, ZOO_MISSING
    _, model, _ = train_run("ppo", env_id, seed=seed, config_file=ZOO_DIR / "ppo.yml", out=tmp_path / "run",
                            progress_bar=False, eval_episodes=0, device="cpu")
    assert model.config.n_timesteps == 100_000  # rl-zoo's budget for both, from the file
    mean, _ = evaluate_policy(model, env_id, 100, deterministic=True, backend="gymnasium")
    assert mean >= threshold, mean
