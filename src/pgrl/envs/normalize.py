"""Running statistics for observation normalization and return-based reward scaling.

Both live on the tensor side of the collector (not as Gymnasium wrappers), so they work the same
for native and Gymnasium environments, and their state is saved with the model and used by
``predict`` and ``pgrl eval``.

With ``n_stacked=K`` each holds K seeds' statistics side by side (mean [K, *shape], one count,
since every seed sees as many samples), takes [K, N, ...] inputs and updates seed k's statistics
from row k only, as K separate objects would (pgrl.batched); ``unstack(k)`` is seed k's own.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from pgrl.errors import ConfigError
from pgrl.obs import TensorDict, is_image_space


class RunningMeanStd(nn.Module):
    """Mean and variance over everything seen, merged batch by batch (parallel algorithm)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4, n_stacked: int | None = None):
        super().__init__()
        full = tuple(shape) if n_stacked is None else (n_stacked, *shape)
        self.register_buffer("mean", torch.zeros(full, dtype=torch.float64))
        self.register_buffer("var", torch.ones(full, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))
        self.sample_dim = 0 if n_stacked is None else 1  # where a batch's samples run

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Fold in batch [N, *shape] (stacked: [K, N, *shape])."""
        d = self.sample_dim
        batch = batch.reshape(*self.mean.shape[:d], -1, *self.mean.shape[d:]).double()
        if batch.shape[d] == 1:  # one env: the batch's variance is 0, skip computing it
            self.merge(batch.select(d, 0), None, 1)
        else:
            var, mean = torch.var_mean(batch, d, correction=0)
            self.merge(mean, var, batch.shape[d])

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

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8,
                 n_stacked: int | None = None):
        super().__init__()
        self.stats = RunningMeanStd(shape, n_stacked=n_stacked)
        self.shape, self.clip, self.epsilon, self.n_stacked = tuple(shape), clip, epsilon, n_stacked

    def forward(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        """obs [N, *shape] (stacked: [K, N, *shape]) -> normalized float32 obs of the same shape."""
        if update:
            self.stats.update(obs)
        mean, var = self.stats.mean, self.stats.var
        if self.n_stacked is not None:  # seed k's statistics for each of its N rows
            mean, var = mean.unsqueeze(1), var.unsqueeze(1)
        scale = torch.rsqrt(var + self.epsilon)
        return torch.clamp((obs - mean) * scale, -self.clip, self.clip).float()

    def unstack(self, k: int) -> ObsNormalizer:
        """Seed k's normalizer of a stacked one (a copy)."""
        single = ObsNormalizer(self.shape, self.clip, self.epsilon).to(self.stats.mean.device)
        single.stats.load_state_dict({"mean": self.stats.mean[k], "var": self.stats.var[k], "count": self.stats.count})
        return single


class DictObsNormalizer(nn.Module):
    """An ObsNormalizer for each Box key of a Dict observation that is not an image; other keys pass."""

    def __init__(self, space: gym.spaces.Dict, clip: float = 10.0):
        super().__init__()
        self.normalizers = nn.ModuleDict({
            key: ObsNormalizer(tuple(sub.shape), clip) for key, sub in space.spaces.items()
            if isinstance(sub, gym.spaces.Box) and not is_image_space(sub)
        })

    def forward(self, obs: TensorDict, update: bool = False) -> TensorDict:
        out = obs._new(dict(obs))
        for key, normalizer in self.normalizers.items():
            dict.__setitem__(out, key, normalizer(obs[key], update=update))
        return out


def make_obs_normalizer(space: gym.Space, config, device: torch.device) -> nn.Module | None:
    """The observation normalizer ``config.normalize`` asks for (None when off), on ``device``."""
    if not config.normalize:
        return None
    if is_image_space(space):
        raise ConfigError("normalize=True standardizes vector observations; image observations are scaled by 1/255 "
                          "in the policy (normalize_images): set normalize to false")
    if isinstance(space, gym.spaces.Dict):
        return DictObsNormalizer(space, config.clip_obs).to(device)
    return ObsNormalizer(tuple(space.shape), clip=config.clip_obs).to(device)


class RewardScaler(nn.Module):
    """Divides rewards by the running std of the discounted return (not mean-centred)."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8,
                 n_stacked: int | None = None):
        super().__init__()
        self.stats = RunningMeanStd((), n_stacked=n_stacked)
        shape = (num_envs,) if n_stacked is None else (n_stacked, num_envs)
        self.register_buffer("returns", torch.zeros(shape, dtype=torch.float64))
        self.gamma, self.clip, self.epsilon, self.n_stacked = gamma, clip, epsilon, n_stacked

    def forward(self, rewards: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        """rewards, dones [N] (stacked: [K, N]) -> scaled float32 rewards of the same shape."""
        self.returns.mul_(self.gamma).add_(rewards)
        self.stats.update(self.returns)
        self.returns.masked_fill_(dones, 0.0)
        scale = torch.rsqrt(self.stats.var + self.epsilon)
        if self.n_stacked is not None:
            # as a lone run's 0-dim scale does, scale in float32 (a [K, 1] float64 one would promote)
            scale = scale.float().unsqueeze(1)
        return torch.clamp(rewards * scale, -self.clip, self.clip).float()
