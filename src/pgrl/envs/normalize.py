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
        batch = batch.reshape(-1, *self.mean.shape).double()
        if batch.shape[0] == 1:  # one env: the batch's variance is 0, skip computing it
            self.merge(batch[0], None, 1)
        else:
            var, mean = torch.var_mean(batch, 0, correction=0)
            self.merge(mean, var, batch.shape[0])

    @torch.no_grad()
    def merge(self, mean: torch.Tensor, var: torch.Tensor | None, count: float | torch.Tensor) -> None:
        """Fold in a batch's mean, variance (None: 0) and count (the parallel-variance rule).

        With w = count / (self.count + count) and delta = mean - self.mean:
        mean += w delta, var = (1 - w) var + w var_batch + w (1 - w) delta^2.  Written as few
        in-place ops: with one env this runs every step, where each op's dispatch is the cost.
        """
        total = self.count + count
        w = count / total
        delta = mean - self.mean
        self.mean.add_(delta * w)
        self.var.mul_(1.0 - w).addcmul_(delta.square_(), w * (1.0 - w))
        if var is not None:
            self.var.addcmul_(var, w)
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
        scale = torch.rsqrt(self.stats.var + self.epsilon)
        return torch.clamp((obs - self.stats.mean) * scale, -self.clip, self.clip).float()


class RewardScaler(nn.Module):
    """Divides rewards by the running std of the discounted return (not mean-centred)."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__()
        self.stats = RunningMeanStd(())
        self.register_buffer("returns", torch.zeros(num_envs, dtype=torch.float64))
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon

    def forward(self, rewards: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        self.returns.mul_(self.gamma).add_(rewards)
        self.stats.update(self.returns)
        self.returns.masked_fill_(dones, 0.0)
        return torch.clamp(rewards * torch.rsqrt(self.stats.var + self.epsilon), -self.clip, self.clip).float()
