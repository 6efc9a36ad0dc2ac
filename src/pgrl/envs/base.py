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
import numpy as np
import torch

from pgrl.errors import EnvError


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


def check_action_masks(masks, action_space: gym.Space, env_id: str, step: int):
    """``masks`` as bool [N, n] (n = Discrete's n or MultiDiscrete's sum(nvec)); EnvError naming the env
    and the step when their width is not the action space's or a copy allows no action (per entry
    for MultiDiscrete).  NumPy on the host: Gymnasium envs hand their masks over as arrays anyway."""
    if isinstance(action_space, gym.spaces.Discrete):
        widths = [int(action_space.n)]
    elif isinstance(action_space, gym.spaces.MultiDiscrete):
        widths = [int(n) for n in np.asarray(action_space.nvec).reshape(-1)]
    else:
        raise EnvError(f"{env_id} gives action masks, which apply to Discrete and MultiDiscrete actions, not "
                       f"{action_space}; drop its action_masks() / action_mask entries")
    masks = np.asarray(masks, dtype=bool)
    n = masks.shape[0] if masks.ndim else 0
    if masks.ndim < 1 or masks[0].size != sum(widths):
        per_env = tuple(masks.shape[1:]) if masks.ndim else ()
        raise EnvError(f"{env_id} gave action masks of shape {per_env} per copy at step {step}; its action space "
                       f"{action_space} needs {sum(widths)} booleans (one per action"
                       f"{', entry after entry' if len(widths) > 1 else ''})")
    masks = masks.reshape(n, -1)
    allowed = masks.any(axis=1, keepdims=True) if len(widths) == 1 else \
        np.logical_or.reduceat(masks, np.cumsum([0, *widths[:-1]]), axis=1)
    if not allowed.all():
        copy, entry = np.argwhere(~allowed)[0]
        where = f" for action entry {entry}" if len(widths) > 1 else ""
        raise EnvError(f"{env_id} copy {copy} allows no action{where} at step {step} (its action mask is all "
                       "False); every state needs at least one valid action")
    return masks


def masks_allow_an_action(masks: torch.Tensor, nvec: tuple[int, ...] | None = None) -> torch.Tensor:
    """0-d bool tensor: every row of ``masks`` [..., n] allows at least one action (per entry of
    ``nvec`` for MultiDiscrete), computed where the masks are (no host copy)."""
    if nvec is None:
        return masks.any(-1).all()
    return torch.stack([part.any(-1).all() for part in masks.split(list(nvec), dim=-1)]).all()
