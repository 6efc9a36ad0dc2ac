"""Each synchronous algorithm solves CartPole-v1 with its preset and a fixed seed.

Solved means a greedy 100-episode mean >= 475 on Gymnasium's own CartPole-v1 (not pgrl's native
copy), evaluated after training.  Budgets are the presets' n_timesteps.
"""

from __future__ import annotations

import pytest

import pgrl

SEED = 0


@pytest.mark.learning
@pytest.mark.parametrize("algo", ["reinforce", "vpg", "actor_critic", "a2c", "ppo"])
def test_solves_cartpole(algo):
    model = pgrl.ALGORITHMS[algo]("MlpPolicy", "CartPole-v1", seed=SEED, device="cpu")
    model.learn()
    mean, std = pgrl.evaluate_policy(model, "CartPole-v1", n_eval_episodes=100, backend="gymnasium")
    assert mean >= 475, f"{algo} reached {mean:.1f} ± {std:.1f} after {model.num_timesteps} steps"


@pytest.mark.learning
@pytest.mark.parametrize(("algo", "threshold"), [("ppo", -200.0), ("a2c", -250.0)])
def test_solves_pendulum(algo, threshold):
    model = pgrl.ALGORITHMS[algo]("MlpPolicy", "Pendulum-v1", seed=SEED, device="cpu")
    model.learn()
    mean, std = pgrl.evaluate_policy(model, "Pendulum-v1", n_eval_episodes=20, backend="gymnasium")
    assert mean >= threshold, f"{algo} reached {mean:.1f} ± {std:.1f} after {model.num_timesteps} steps"
