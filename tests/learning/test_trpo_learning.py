"""TRPO solves CartPole-v1 and Pendulum-v1 with its presets and a fixed seed.

Greedy evaluation on Gymnasium's own environments (not pgrl's native copies) after training for
the preset's n_timesteps: CartPole-v1 mean >= 475 over 100 episodes, Pendulum-v1 mean >= -250
over 20 episodes.
"""

from __future__ import annotations

import pytest

import pgrl

SEED = 0


@pytest.mark.learning
@pytest.mark.parametrize(
    ("env_id", "n_episodes", "threshold"), [("CartPole-v1", 100, 475.0), ("Pendulum-v1", 20, -250.0)]
)
def test_trpo_solves(env_id, n_episodes, threshold):
    model = pgrl.TRPO("MlpPolicy", env_id, seed=SEED, device="cpu")
    model.learn()
    mean, std = pgrl.evaluate_policy(model, env_id, n_eval_episodes=n_episodes, backend="gymnasium")
    assert mean >= threshold, f"trpo reached {mean:.1f} ± {std:.1f} on {env_id} after {model.num_timesteps} steps"
