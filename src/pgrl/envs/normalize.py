"""Running statistics for observation normalization and return-based reward scaling.

Both live on the tensor side of the collector (not as Gymnasium wrappers), so they work the same
for native and Gymnasium environments, and their state is saved with the model and used by
``predict`` and ``pgrl eval``.
"""

from __future__ import annotations

import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Mean and variance over everything seen, merged batch by batch (parallel algorithm)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        batch = batch.double().reshape(-1, *self.mean.shape)
        b_mean, b_var, b_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean += delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta.pow(2) * self.count * b_count / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)


class ObsNormalizer(nn.Module):
    """(obs - mean) / std, clipped to [-clip, clip]; statistics update only while training."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__()
        self.stats = RunningMeanStd(shape)
        self.clip, self.epsilon = clip, epsilon

    def forward(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        if update:
            self.stats.update(obs)
        mean, std = self.stats.mean.float(), torch.sqrt(self.stats.var.float() + self.epsilon)
        return torch.clamp((obs - mean) / std, -self.clip, self.clip)


class RewardScaler(nn.Module):
    """Divides rewards by the running std of the discounted return (not mean-centred)."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__()
        self.stats = RunningMeanStd(())
        self.register_buffer("returns", torch.zeros(num_envs, dtype=torch.float64))
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon

    def forward(self, rewards: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        self.returns.mul_(self.gamma).add_(rewards.double())
        self.stats.update(self.returns)
        self.returns.masked_fill_(dones, 0.0)
        scaled = rewards / torch.sqrt(self.stats.var.float() + self.epsilon)
        return torch.clamp(scaled, -self.clip, self.clip)
