"""Batched torch re-implementations of Gymnasium's classic-control environments.

``make_native("CartPole-v1", 4096)`` gives a ``VecEnv`` that steps all copies with a fixed
sequence of tensor ops on CPU or CUDA, with Gymnasium's dynamics, rewards, termination, time
limits, reset ranges and spaces.
"""

from __future__ import annotations

import torch

from pgrl.envs.native._base import NativeVecEnv
from pgrl.envs.native.acrobot import Acrobot
from pgrl.envs.native.cartpole import CartPole
from pgrl.envs.native.continuous_mountain_car import ContinuousMountainCar
from pgrl.envs.native.mountain_car import MountainCar
from pgrl.envs.native.pendulum import Pendulum
from pgrl.errors import EnvError

NATIVE_ENVS: dict[str, type[NativeVecEnv]] = {
    cls.env_id: cls for cls in (CartPole, Acrobot, MountainCar, ContinuousMountainCar, Pendulum)
}


def make_native(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    max_episode_steps: int | None = None,
) -> NativeVecEnv:
    """``num_envs`` copies of ``env_id`` simulated natively in torch (see ``NativeVecEnv``)."""
    try:
        cls = NATIVE_ENVS[env_id]
    except KeyError:
        raise EnvError(
            f"There is no native implementation of {env_id!r}; choose one of {', '.join(NATIVE_ENVS)} "
            "or use the gymnasium backend."
        ) from None
    return cls(num_envs, seed=seed, device=device, dtype=dtype, max_episode_steps=max_episode_steps)


__all__ = [
    "NATIVE_ENVS",
    "Acrobot",
    "CartPole",
    "ContinuousMountainCar",
    "MountainCar",
    "NativeVecEnv",
    "Pendulum",
    "make_native",
]
