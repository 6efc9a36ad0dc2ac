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
from pgrl.envs.pomdp import VELOCITY_INDICES, no_velocity_id
from pgrl.errors import EnvError


def no_velocity(cls: type[NativeVecEnv]) -> type[NativeVecEnv]:
    """``cls`` with its velocities zeroed in the observation (pgrl.envs.pomdp's NoVel id)."""
    indices = VELOCITY_INDICES[cls.env_id]

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        obs = cls._observe(self, state)
        if getattr(self, "_velocity_mask", None) is None:  # made once, on the env's device and dtype
            self._velocity_mask = torch.ones(obs.shape[-1], dtype=obs.dtype, device=obs.device)
            self._velocity_mask[list(indices)] = 0.0
        return obs * self._velocity_mask

    doc = f"{cls.env_id} with observation entries {list(indices)} (the velocities) zeroed: a POMDP."
    return type(f"{cls.__name__}NoVel", (cls,), {"env_id": no_velocity_id(cls.env_id), "_observe": _observe,
                                                  "__doc__": doc, "__module__": __name__})


_FULLY_OBSERVED = (CartPole, Acrobot, MountainCar, ContinuousMountainCar, Pendulum)
NATIVE_ENVS: dict[str, type[NativeVecEnv]] = {cls.env_id: cls for cls in _FULLY_OBSERVED}
NATIVE_ENVS.update({no_velocity_id(cls.env_id): no_velocity(cls) for cls in _FULLY_OBSERVED
                    if cls.env_id in VELOCITY_INDICES})


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
