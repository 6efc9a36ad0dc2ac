"""Gymnasium-backed vector envs: async (subprocess) and sync agree; truncation keeps its final obs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrl.envs.make import make_env


def play(vectorization: str, env_id: str, steps: int, seed: int):
    env = make_env(env_id, 4, backend="gymnasium", vectorization=vectorization)
    rng = np.random.default_rng(7)
    obs = env.reset(seed=seed)
    trace = [obs]
    returns, finished = torch.zeros(4), []
    for _ in range(steps):
        if env_id == "Pendulum-v1":
            actions = torch.as_tensor(rng.uniform(-2, 2, size=(4, 1)), dtype=torch.float32)
        else:
            actions = torch.as_tensor(rng.integers(0, 2, size=4))
        step = env.step(actions)
        returns += step.rewards
        for i in torch.nonzero(step.terminated | step.truncated).flatten().tolist():
            finished.append((i, float(returns[i]), bool(step.truncated[i])))
            returns[i] = 0.0
        trace += [step.obs, step.final_obs, step.rewards, step.terminated, step.truncated]
    env.close()
    return trace, finished


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_async_matches_sync(env_id):
    sync_trace, sync_episodes = play("sync", env_id, 450, seed=11)
    async_trace, async_episodes = play("async", env_id, 450, seed=11)
    assert len(sync_episodes) > 4  # episodes ended (and auto-reset) during the run
    assert sync_episodes == async_episodes
    for a, b in zip(sync_trace, async_trace, strict=True):
        assert torch.equal(a, b)


def test_truncation_reports_the_final_observation():
    env = make_env("Pendulum-v1", 2, backend="gymnasium")
    env.reset(seed=3)
    single = gym.make("Pendulum-v1")  # copy 0 of seed 3 is seeded with 3 + 0
    single.reset(seed=3)
    for t in range(200):
        step = env.step(torch.zeros(2, 1))
        expected, _, _, single_truncated, _ = single.step(np.zeros(1, np.float32))
        assert torch.allclose(step.final_obs[0], torch.as_tensor(expected), atol=1e-6)
        if t < 199:
            assert not step.truncated.any() and torch.equal(step.final_obs, step.obs)
    # the 200th step is cut by the time limit: final_obs is where the episode ended, obs is the
    # first observation of the next one
    assert single_truncated and step.truncated.all() and not step.terminated.any()
    assert not torch.equal(step.final_obs, step.obs)
    env.close()
