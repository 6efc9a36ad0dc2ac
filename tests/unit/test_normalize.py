"""Running statistics: batch-by-batch merging equals the statistics of everything at once."""

import numpy as np
import torch

from pgrl.distributed.workers import merge_moments
from pgrl.envs.normalize import ObsNormalizer, RewardScaler, RunningMeanStd


def test_running_mean_std_matches_all_data_at_once():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (1, 1, 7, 1, 32, 3)]
    stats = RunningMeanStd((4,), epsilon=0.0)
    for chunk in chunks:
        stats.update(torch.as_tensor(chunk, dtype=torch.float32))
    data = np.concatenate(chunks).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats.mean.numpy(), data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.var.numpy(), data.var(0), rtol=1e-10)
    assert float(stats.count) == len(data)


def test_merged_moments_equal_updates():
    rng = np.random.default_rng(1)
    a, b = torch.as_tensor(rng.normal(size=(5, 3))), torch.as_tensor(rng.normal(1.0, 3.0, size=(9, 3)))
    direct, merged, worker = RunningMeanStd((3,)), RunningMeanStd((3,)), RunningMeanStd((3,), epsilon=0.0)
    direct.update(a)
    direct.update(b)
    merged.update(a)
    worker.update(b)
    merge_moments(merged, worker.mean, worker.var, worker.count)
    torch.testing.assert_close(merged.mean, direct.mean)
    torch.testing.assert_close(merged.var, direct.var)


def test_obs_normalizer_and_reward_scaler_outputs():
    norm = ObsNormalizer((2,), clip=5.0)
    obs = torch.tensor([[1.0, -2.0], [3.0, 40.0]])
    out = norm(obs, update=True)
    mean, var = norm.stats.mean, norm.stats.var
    expected = torch.clamp((obs.double() - mean) / torch.sqrt(var + 1e-8), -5.0, 5.0).float()
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)

    scaler = RewardScaler(num_envs=2, gamma=0.5, clip=100.0)
    returns, seen = np.zeros(2), []
    for rewards, dones in [([1.0, 2.0], [False, True]), ([4.0, -1.0], [False, False]), ([0.5, 3.0], [True, False])]:
        out = scaler(torch.tensor(rewards), torch.tensor(dones))
        returns = 0.5 * returns + np.array(rewards)
        seen.append(returns.copy())
        returns[np.array(dones)] = 0.0
        all_returns = np.concatenate(seen)
        var = (all_returns.var() * len(all_returns) + 1e-4 * all_returns.mean() ** 2 / (1 + 1e-4 / len(all_returns))
               + 1e-4) / (len(all_returns) + 1e-4)
        np.testing.assert_allclose(out.numpy(), np.array(rewards) / np.sqrt(var + 1e-8), rtol=1e-5)


def test_stacked_statistics_equal_separate_ones():
    torch.manual_seed(0)
    k, n = 3, 5
    obs_norm = ObsNormalizer((4,), clip=5.0, n_stacked=k)
    scaler = RewardScaler(n, gamma=0.9, clip=3.0, n_stacked=k)
    lone_obs = [ObsNormalizer((4,), clip=5.0) for _ in range(k)]
    lone_scalers = [RewardScaler(n, gamma=0.9, clip=3.0) for _ in range(k)]
    for _ in range(6):
        obs = torch.randn(k, n, 4) * torch.arange(1.0, k + 1).view(k, 1, 1)
        rewards, dones = torch.randn(k, n) * 4, torch.rand(k, n) < 0.3
        got_obs, got_rewards = obs_norm(obs, update=True), scaler(rewards, dones)
        for i in range(k):
            torch.testing.assert_close(got_obs[i], lone_obs[i](obs[i], update=True))
            assert torch.equal(got_rewards[i], lone_scalers[i](rewards[i], dones[i]))
    for i in range(k):
        for name, value in lone_obs[i].state_dict().items():
            torch.testing.assert_close(obs_norm.unstack(i).state_dict()[name], value)
