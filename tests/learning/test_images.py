"""Image observations learned: CnnPolicy needs the image's spatial structure.

QuadrantImageEnv: a white square in one quadrant of a 36x36 image, the action names the quadrant
(every image has the same pixel sum, so only the square's position tells; chance = 25 of 100).

Seed sweep (greedy 10-episode mean of 100 steps each, AMD EPYC, torch 2.13.0, 2026-12-01):
CnnPolicy, 15,000 steps, seeds 0-3 (one torch thread): 100 100 100 100.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

import pgrl
from pgrl.envs.identity import QuadrantImageEnv

pytestmark = pytest.mark.learning


def test_cnn_policy_learns_where_the_square_is():
    torch.set_num_threads(2)
    make = partial(QuadrantImageEnv, channels=3, channel_last=True)
    model = pgrl.PPO("CnnPolicy", make, n_envs=4, n_steps=128, batch_size=128, n_epochs=4, learning_rate=5e-4,
                     gamma=0.0, seed=0)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.policy.modules()) == 3
    model.learn(15_000)
    assert model.collector()._storage.obs.dtype == torch.uint8
    mean, _ = pgrl.evaluate_policy(model, make(), n_eval_episodes=10)
    assert mean >= 90, mean

