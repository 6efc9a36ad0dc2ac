"""Every algorithm runs on discrete and continuous envs, saves, loads and predicts the same."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pgrl
from pgrl.errors import CheckpointError, ConfigError, EnvError

SMALL = {
    "reinforce": {"n_envs": 2},
    "vpg": {"n_envs": 2},
    "actor_critic": {"n_envs": 4},
    "a2c": {"n_envs": 4, "n_steps": 8},
    "ppo": {"n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 2},
    "trpo": {"n_envs": 4, "n_steps": 16, "batch_size": 32},
}
SYNC_ALGOS = sorted(SMALL)


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("algo", SYNC_ALGOS)
def test_runs_a_few_hundred_steps(algo, env_id, backend):
    model = pgrl.ALGORITHMS[algo]("MlpPolicy", env_id, seed=1, env_backend=backend, **SMALL[algo])
    before = [p.detach().clone() for p in model.policy.actor_parameters()]
    model.learn(300)
    assert model.num_timesteps >= 300
    changed = any(not torch.equal(b, p) for b, p in zip(before, model.policy.actor_parameters(), strict=True))
    assert changed, "training did not change the actor"
    obs = model.env.reset(seed=5).cpu().numpy()
    actions, state = model.predict(obs)
    assert state is None and actions.shape[0] == obs.shape[0]
    if env_id == "Pendulum-v1":
        assert actions.shape == (obs.shape[0], 1) and np.all(np.abs(actions) <= 2.0)
    else:
        assert set(np.unique(actions)) <= {0, 1}


@pytest.mark.parametrize("algo", SYNC_ALGOS)
def test_save_load_round_trip(algo, tmp_path):
    model = pgrl.ALGORITHMS[algo]("MlpPolicy", "Pendulum-v1", seed=2, normalize=True, **SMALL[algo])
    model.learn(200)
    path = model.save(tmp_path / "model")
    assert path.name == "model.safetensors"
    loaded = pgrl.ALGORITHMS[algo].load(path)
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs)[0], loaded.predict(obs)[0])
    assert loaded.num_timesteps == model.num_timesteps
    assert loaded.config == model.config
    # the loaded normalizer statistics are the trained ones, and predict uses them
    assert torch.equal(loaded.obs_normalizer.stats.mean, model.obs_normalizer.stats.mean)
    assert pgrl.Algorithm.load(path).name == algo


def test_loading_another_algorithms_model_names_both(tmp_path):
    path = pgrl.PPO("MlpPolicy", "CartPole-v1", n_envs=2, n_steps=8, batch_size=16).save(tmp_path / "m")
    with pytest.raises(CheckpointError, match="holds a ppo model, not a2c; load it with PPO.load"):
        pgrl.A2C.load(path)


def test_loading_into_an_env_with_other_spaces_names_both(tmp_path):
    path = pgrl.PPO("MlpPolicy", "CartPole-v1", n_envs=2, n_steps=8, batch_size=16).save(tmp_path / "m")
    env = pgrl.make_env("Acrobot-v1", 2)
    with pytest.raises(CheckpointError, match="was trained on CartPole-v1 .* but the given env Acrobot-v1"):
        pgrl.PPO.load(path, env=env)


def test_evaluate_policy_counts_whole_episodes():
    model = pgrl.A2C("MlpPolicy", "CartPole-v1", seed=0, n_envs=2)
    returns, lengths = pgrl.evaluate_policy(model, n_eval_episodes=7, return_episode_rewards=True)
    assert len(returns) == 7 and returns == [float(n) for n in lengths]  # CartPole pays 1 per step
    mean, std = pgrl.evaluate_policy(model, n_eval_episodes=7, backend="gymnasium")
    assert math.isfinite(mean) and std >= 0


def test_api_errors_are_pgrl_errors():
    with pytest.raises(EnvError, match="unknown environment id"):
        pgrl.PPO("MlpPolicy", "NoSuchEnv-v3")
    with pytest.raises(ConfigError, match="unknown hyperparameter 'clip_rnage'"):
        pgrl.PPO("MlpPolicy", "CartPole-v1", clip_rnage=0.1)
    with pytest.raises(ConfigError, match="CnnPolicy.*image observations.*use MlpPolicy"):
        pgrl.PPO("CnnPolicy", "CartPole-v1")
    with pytest.raises(ConfigError, match="policy must be one of MlpPolicy, CnnPolicy, MultiInputPolicy"):
        pgrl.PPO(pgrl.policies.ActorCriticPolicy, "CartPole-v1")
    with pytest.raises(ConfigError, match="hyperparameter 'policy'"):
        pgrl.PPO("LstmPolicyX", "CartPole-v1")
    with pytest.raises(ConfigError, match="vpg keeps its baseline in its own network"):
        pgrl.VPG("MlpPolicy", "CartPole-v1", policy_kwargs={"shared": True, "net_arch": [64, 64]})
    with pytest.raises(ConfigError, match="shared=true takes net_arch as one list"):
        pgrl.A2C("MlpPolicy", "CartPole-v1", policy_kwargs={"shared": True, "net_arch": {"pi": [8], "vf": [8]}})


def test_schedules_decay_learning_rate_and_clip_range():
    model = pgrl.PPO(
        "MlpPolicy",
        "CartPole-v1",
        n_envs=4,
        n_steps=16,
        batch_size=64,
        n_epochs=1,
        learning_rate="lin_1e-3",
        clip_range=lambda p: 0.1 + 0.1 * p,
    )
    rows = []
    model.learn(640, callback=lambda algo, row: rows.append(row))
    lrs = [row["train/learning_rate"] for row in rows]
    clips = [row["train/clip_range"] for row in rows]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] < lrs[0] and lrs == sorted(lrs, reverse=True)
    assert clips[0] == pytest.approx(0.2) and clips[-1] < 0.2
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(lrs[-1])


def test_same_seed_same_parameters_on_cpu():
    def train():
        model = pgrl.A2C("MlpPolicy", "CartPole-v1", seed=3, n_envs=4, device="cpu")
        model.learn(400)
        return torch.cat([p.detach().flatten() for p in model.policy.parameters()])

    assert torch.equal(train(), train())
