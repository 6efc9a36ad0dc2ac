"""Shared test set-up: one torch thread (the machine has 2 cores), and tiny test-only envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

torch.set_num_threads(1)


class MultiDiscreteActionEnv(gym.Env):
    """An env whose MultiDiscrete action space no pgrl algorithm handles."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.MultiDiscrete([2, 3])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


if "pgrl-test/MultiDiscrete-v0" not in gym.registry:
    gym.register("pgrl-test/MultiDiscrete-v0", entry_point=MultiDiscreteActionEnv, max_episode_steps=10)


@pytest.fixture
def tmp_run(tmp_path):
    return tmp_path / "run"
