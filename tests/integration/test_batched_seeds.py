"""K seeds trained as one batch (pgrl.batched) follow the runs each seed makes alone.

Float rounding differs between a batched matmul and K single ones, and training amplifies
differences slowly, so runs are compared over a few thousand steps with tolerances far below
what any real divergence (one different action, a different minibatch order) produces.
"""

from __future__ import annotations

import csv
import math

import pytest
import torch

from pgrl import PPO
from pgrl.batched import batched_unsupported, build_models, train_batched
from pgrl.envs.make import make_env
from pgrl.errors import ConfigError

TIME_COLUMNS = {"time/elapsed", "time/sps"}


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_params(alone, together, atol):
    together_params = dict(together.policy.named_parameters())
    for name, param in alone.policy.named_parameters():
        diff = (param.detach() - together_params[name].detach()).abs().max().item()
        assert diff <= atol, f"seed {alone.seed}: {name} differs by {diff:.3g}"


def assert_same_metrics(alone_csv, together_csv):
    alone, together = read_rows(alone_csv), read_rows(together_csv)
    assert len(alone) == len(together) > 0
    assert list(alone[0]) == list(together[0]), "the batched run must write the same columns"
    for row_a, row_b in zip(alone, together, strict=True):
        for key in row_a:
            if key in TIME_COLUMNS:
                continue
            a, b = float(row_a[key] or "nan"), float(row_b[key] or "nan")
            if math.isnan(a):
                assert math.isnan(b), key
            else:
                assert b == pytest.approx(a, rel=1e-3, abs=1e-5), f"{key} at step {row_a['step']}"


def train_alone(env_id, seed, steps, hparams, log_dir=None):
    model = PPO("MlpPolicy", env_id, seed=seed, env_backend="native", **hparams)
    return model.learn(steps, log_dir=log_dir)


def test_each_seed_matches_its_lone_run_cartpole(tmp_path):
    seeds, steps = [0, 1, 2], 2048  # the default preset: 8 envs x 32 steps, 20 epochs of 256
    alone = [train_alone("CartPole-v1", s, steps, {}, tmp_path / f"alone{s}") for s in seeds]
    dirs = [tmp_path / f"together{s}" for s in seeds]
    summaries = train_batched("ppo", "CartPole-v1", seeds, dirs, total_timesteps=steps, eval_episodes=0)
    assert [s["seed"] for s in summaries] == seeds
    for seed, model, run_dir in zip(seeds, alone, dirs, strict=True):
        together = PPO.load(run_dir / "model.safetensors")
        assert together.seed == seed and together.num_timesteps == steps
        assert_same_params(model, together, atol=2e-5)
        assert_same_metrics(tmp_path / f"alone{seed}" / "metrics.csv", run_dir / "metrics.csv")
        assert (run_dir / "config.json").exists() and (run_dir / "summary.json").exists()
    # the seeds really differ from each other (the comparison above is not trivially true)
    assert (alone[0].policy.pi_head[0].weight - alone[1].policy.pi_head[0].weight).abs().max() > 1e-3


@pytest.mark.parametrize(
    "env_id, hparams",
    [
        # Box actions (Gaussian noise per seed), clipped value loss, no gradient clipping
        ("Pendulum-v1", dict(n_envs=4, n_steps=64, batch_size=64, n_epochs=3, normalize=False,
                             normalize_reward=False, clip_range_vf=0.5, max_grad_norm=None,
                             learning_rate=3e-4)),
        # one shared trunk with relu, several minibatches per epoch, RMSprop
        ("Acrobot-v1", dict(n_envs=4, n_steps=32, batch_size=32, n_epochs=2, optimizer="rmsprop",
                            policy_kwargs={"net_arch": [32, 32], "shared": True, "activation_fn": "relu"})),
    ],
)
def test_each_seed_matches_its_lone_run_other_layouts(env_id, hparams):
    seeds, steps = [3, 7], 1024
    alone = [train_alone(env_id, s, steps, hparams) for s in seeds]
    summaries = train_batched("ppo", env_id, seeds, total_timesteps=steps, hparams=hparams)
    for model, summary in zip(alone, summaries, strict=True):
        assert_same_params(model, summary["model"], atol=5e-5)


def assert_same_training_state(alone, together, atol, kl_coef=True):
    """Parameters, observation statistics and the adaptive KL coefficient of seed k's two runs."""
    assert_same_params(alone, together, atol)
    if alone.obs_normalizer is not None:
        for name, value in alone.obs_normalizer.state_dict().items():
            torch.testing.assert_close(together.obs_normalizer.state_dict()[name], value, rtol=1e-4, atol=atol)
    if kl_coef:
        assert together.kl_coef == alone.kl_coef


# Several minibatches per epoch and a small target_kl, so seeds stop their epochs at different
# minibatches and different rollouts (the test checks that they do) while the others go on.
EVERY_OPTION = dict(n_envs=4, n_steps=64, batch_size=64, n_epochs=6, learning_rate=3e-3, target_kl=0.004,
                    kl_coef=0.2, normalize=True, normalize_reward=True)


def test_target_kl_kl_coef_and_normalization_match_lone_runs(tmp_path):
    seeds, steps = [0, 1, 2], 2048
    alone = [train_alone("CartPole-v1", s, steps, EVERY_OPTION, tmp_path / f"alone{s}") for s in seeds]
    dirs = [tmp_path / f"together{s}" for s in seeds]
    summaries = train_batched("ppo", "CartPole-v1", seeds, dirs, total_timesteps=steps,
                              hparams=EVERY_OPTION, eval_episodes=0)
    updates = []
    assert [s["seed"] for s in summaries] == seeds
    for seed, model, run_dir in zip(seeds, alone, dirs, strict=True):
        together = PPO.load(run_dir / "model.safetensors")
        assert_same_training_state(model, together, atol=5e-5, kl_coef=False)  # kl_coef: in the metrics
        assert_same_metrics(tmp_path / f"alone{seed}" / "metrics.csv", run_dir / "metrics.csv")
        updates.append([row["stats/n_updates"] for row in read_rows(run_dir / "metrics.csv")])
    # early stops happened, at different points for different seeds
    assert any(float(n) < EVERY_OPTION["n_epochs"] * 4 for row in updates for n in row)
    assert len({tuple(row) for row in updates}) == len(seeds)


@pytest.mark.parametrize(
    "hparams",
    [
        # the preset: observation and reward normalization, plus gSDE with fresh noise every 4 steps
        dict(n_envs=4, n_steps=64, use_sde=True, sde_sample_freq=4),
        # gSDE noise once per rollout, clipped raw rewards, an adaptive KL penalty, early stops
        dict(n_envs=4, n_steps=64, use_sde=True, normalize=False, normalize_reward=False, clip_reward=2.0,
             kl_coef=0.5, target_kl=0.01, batch_size=64),
    ],
)
def test_gsde_and_reward_options_match_lone_runs_pendulum(hparams):
    seeds, steps = [3, 7], 1024
    alone = [train_alone("Pendulum-v1", s, steps, hparams) for s in seeds]
    summaries = train_batched("ppo", "Pendulum-v1", seeds, total_timesteps=steps, hparams=hparams)
    for model, summary in zip(alone, summaries, strict=True):
        assert_same_training_state(model, summary["model"], atol=5e-5)
    assert (alone[0].policy.log_std - alone[1].policy.log_std).abs().max() > 1e-4


def test_split_streams_reset_like_separate_envs():
    env = make_env("Pendulum-v1", 3 * 4, backend="native")
    env.split_streams([10, 20, 30])
    together = env.reset()
    for k, seed in enumerate([10, 20, 30]):
        alone = make_env("Pendulum-v1", 4, backend="native")
        torch.testing.assert_close(together[4 * k : 4 * k + 4], alone.reset(seed=seed))
    with pytest.raises(Exception, match="without a seed"):
        env.reset(seed=1)


def test_seed_streams_start_where_a_lone_run_starts():
    models, generators = build_models("CartPole-v1", [5, 6])
    for model, generator in zip(models, generators, strict=True):
        alone = PPO("MlpPolicy", "CartPole-v1", seed=model.seed)
        expected = torch.rand(8)  # the global stream right after a lone run is built
        assert torch.equal(torch.rand(8, generator=generator), expected)
        torch.testing.assert_close(alone.policy.pi_head[0].weight, model.policy.pi_head[0].weight)


@pytest.mark.parametrize(
    "algo, env_id, hparams, reason",
    [
        ("a2c", "CartPole-v1", {}, "one seed per process"),
        ("ppo", "FrozenLake-v1", {}, "no native"),
    ],
)
def test_unsupported_configurations_say_why(algo, env_id, hparams, reason):
    message = batched_unsupported(algo, env_id, hparams)
    assert message is not None and reason in message
    with pytest.raises(ConfigError, match="one by one"):
        train_batched(algo, env_id, [0, 1], total_timesteps=256, hparams=hparams)


def test_supported_configuration_and_bad_seeds():
    assert batched_unsupported("ppo", "CartPole-v1", {}) is None
    every_option = dict(target_kl=0.02, kl_coef=0.1, normalize=True, normalize_reward=True, clip_reward=5.0)
    assert batched_unsupported("ppo", "CartPole-v1", every_option) is None
    assert batched_unsupported("ppo", "Pendulum-v1", {"use_sde": True, "sde_sample_freq": 4}) is None
    with pytest.raises(ConfigError, match="distinct seeds"):
        train_batched("ppo", "CartPole-v1", [1, 1], total_timesteps=256)


def test_time_budget_stops_early(tmp_path):
    summaries = train_batched("ppo", "CartPole-v1", [0, 1], [tmp_path / "a", tmp_path / "b"],
                              total_timesteps=10_000_000, stop_seconds=1.0, eval_episodes=0)
    for summary in summaries:
        assert 0 < summary["num_timesteps"] < 10_000_000
        assert summary["train_seconds"] < 30
