"""The vector-environment interface every part of pgrl after the Gymnasium boundary speaks.

A ``VecEnv`` steps ``num_envs`` copies of one environment at once and speaks torch tensors on
``device``.  Episodes reset automatically inside ``step``: the returned ``obs`` is already the
first observation of the next episode wherever one ended, and ``final_obs`` keeps the
observation the step actually reached, so a truncated step can bootstrap from V(final_obs).

Shapes (N = num_envs):

| field       | shape            | dtype          |
|-------------|------------------|----------------|
| obs         | [N, *obs_shape]  | float32        |
| rewards     | [N]              | float32        |
| terminated  | [N]              | bool           |
| truncated   | [N]              | bool           |
| final_obs   | [N, *obs_shape]  | float32        |
| episode_over| [N] or None      | bool           |

Observations of image spaces stay uint8 and Dict spaces come as a pgrl.obs.TensorDict.
``episode_over`` is None unless the env's dones are shorter than its episodes (Atari's episodic
life: a lost life is terminal for the learner, but returns are counted over whole games); then it
marks where a whole episode ended.

Actions are [N] int64 for Discrete spaces and [N, *shape] for the others.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import gymnasium as gym
import torch


@dataclass(frozen=True)
class Step:
    """One batched transition; see the module docstring for shapes."""

    obs: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: torch.Tensor
    episode_over: torch.Tensor | None = None


class VecEnv(abc.ABC):
    """N copies of one environment stepped together, speaking torch tensors."""

    env_id: str
    num_envs: int
    single_observation_space: gym.Space
    single_action_space: gym.Space
    device: torch.device
    max_episode_steps: int | None

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every copy; copy i is seeded with ``seed + i`` when a seed is given. Returns obs [N, ...]."""

    @abc.abstractmethod
    def step(self, actions: torch.Tensor) -> Step:
        """Advance every copy by one step, resetting finished episodes automatically."""

    def action_masks(self) -> torch.Tensor | None:
        """Valid actions of the current observations, bool [N, n] (MultiDiscrete: [N, sum(nvec)]),
        or None when the env has no masks.  A native env can return a tensor it keeps on its device."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (subprocesses, windows)."""

    def __enter__(self) -> VecEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
