"""The parts of Stable-Baselines3's surface users' scripts touch: predict's shapes and dtypes,
schedules that survive save/load, get/set_parameters, reset_num_timesteps, evaluate_policy's
arguments, and validation of bad hyperparameters."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrl
from pgrl.errors import CheckpointError, ConfigError, EnvError


class Float64Box(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3), {}

    def step(self, action):
        assert action.dtype == np.float64
        return np.zeros(3), -float(np.sum(action**2)), False, False, {}


def test_predict_returns_sb3_shapes_and_dtypes():
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    action, state = model.predict(obs)
    assert isinstance(action, np.ndarray) and action.shape == () and action.dtype == np.int64 and state is None
    assert env.action_space.contains(action)
    assert model.predict(np.stack([obs, obs]))[0].shape == (2,)
    with pytest.raises(EnvError, match=r"tuple \(observation, info\)"):
        model.predict(env.reset())
    with pytest.raises(EnvError, match="shape"):
        model.predict(np.zeros(5))
    box = pgrl.A2C("MlpPolicy", Float64Box(), seed=0, device="cpu")
    action, _ = box.predict(np.zeros(3))
    assert action.shape == (2,) and action.dtype == np.float64
    box.learn(40)  # the env asserts float64 actions


def test_callable_schedule_survives_save_and_load(tmp_path):
    def halving(progress_remaining):
        return 1e-3 * (0.5 + 0.5 * progress_remaining**2)

    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", learning_rate=halving)
    loaded = pgrl.PPO.load(model.save(tmp_path / "m"))
    for p in (1.0, 0.73, 0.5, 0.0):
        assert loaded.lr_schedule(p) == pytest.approx(halving(p), rel=2e-3), p
    again = pgrl.PPO.load(loaded.save(tmp_path / "again"))  # a loaded schedule saves as itself
    assert again.config.to_json()["learning_rate"] == loaded.config.to_json()["learning_rate"]


@pytest.mark.parametrize(("key", "value"), [("clip_range_vf", -0.2), ("clip_range", 0.0), ("learning_rate", -1e-3),
                                            ("learning_rate", "lin_-1")])
def test_bad_schedules_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        pgrl.PPO("MlpPolicy", "CartPole-v1", **{key: value})


def test_get_and_set_parameters(tmp_path):
    a = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", n_steps=32, batch_size=64)
    a.learn(512)
    b = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=1, device="cpu", n_steps=32, batch_size=64)
    params = a.get_parameters()
    assert {"policy", "optimizer.optimizer"} <= set(params)
    b.set_parameters(params)
    obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    assert np.array_equal(a.predict(obs)[0], b.predict(obs)[0])
    c = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=2, device="cpu")
    c.set_parameters(str(a.save(tmp_path / "a")))
    assert all(torch.equal(x, y) for x, y in zip(a.policy.parameters(), c.policy.parameters(), strict=True))
    with pytest.raises(CheckpointError, match="does not have"):
        b.set_parameters({"policy": params["policy"], "critic": {}})
    with pytest.raises(CheckpointError, match="lacks 'policy'"):
        b.set_parameters({"optimizer.optimizer": params["optimizer.optimizer"]})


def test_reset_num_timesteps():
    model = pgrl.A2C("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    model.learn(400)
    model.learn(400)
    assert model.num_timesteps == 400
    model.learn(400, reset_num_timesteps=False)
    assert model.num_timesteps == 800


def test_evaluate_policy_takes_sb3_arguments():
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    calls = []
    returns, lengths = pgrl.evaluate_policy(model, gym.make("CartPole-v1"), 2, return_episode_rewards=True,
                                            callback=lambda locals_, globals_: calls.append(1), warn=False)
    assert len(returns) == 2 and len(calls) == sum(lengths)
    with pytest.raises(AssertionError, match="below threshold"):
        pgrl.evaluate_policy(model, "CartPole-v1", 3, reward_threshold=10_000)
    with pytest.raises(EnvError, match="does not render"):
        pgrl.evaluate_policy(model, "CartPole-v1", 1, render=True)
    frames = []
    rendering = gym.wrappers.TimeLimit(gym.make("CartPole-v1", render_mode="rgb_array").unwrapped, 5)
    pgrl.evaluate_policy(model, rendering, 1, render=True, callback=lambda locals_, globals_: frames.append(1))
    assert frames
