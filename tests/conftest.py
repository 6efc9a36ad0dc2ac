"""Shared test set-up: one torch thread (the machine has 2 cores), and tiny test-only envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

torch.set_num_threads(1)


class TupleActionEnv(gym.Env):
    """An env whose Tuple action space no pgrl algorithm handles."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Discrete(3)])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


if "pgrl-test/TupleAction-v0" not in gym.registry:
    gym.register("pgrl-test/TupleAction-v0", entry_point=TupleActionEnv, max_episode_steps=10)


@pytest.fixture
def tmp_run(tmp_path):
    return tmp_path / "run"
