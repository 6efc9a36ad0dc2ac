"""Partially observed control tasks: the velocities hidden, under rl-zoo's ``NoVel`` ids.

``CartPoleNoVel-v1`` is CartPole-v1 whose observation has its two velocities (cart and pole)
set to zero, so a policy must infer them from what it has seen: a memory task (a POMDP).  The
observation keeps its shape and space, as rl-zoo's ``MaskVelocityWrapper`` does, so rl-zoo's
RecurrentPPO presets for these ids apply unchanged.  Importing pgrl registers the ids with
Gymnasium (unless something registered them first); CartPole, Pendulum and the two
MountainCars also have native batched versions (pgrl.envs.native).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

#: the observation entries that are velocities, per id (rl-zoo's table)
VELOCITY_INDICES: dict[str, tuple[int, ...]] = {
    "CartPole-v1": (1, 3),
    "Pendulum-v1": (2,),
    "MountainCar-v0": (1,),
    "MountainCarContinuous-v0": (1,),
    "LunarLander-v3": (2, 3, 5),
    "LunarLanderContinuous-v3": (2, 3, 5),
}


def no_velocity_id(env_id: str) -> str:
    """"CartPole-v1" -> "CartPoleNoVel-v1"."""
    name, _, version = env_id.rpartition("-v")
    return f"{name}NoVel-v{version}"


def velocity_mask(env_id: str, shape: tuple[int, ...]) -> np.ndarray:
    """float32 ones with zeros at ``env_id``'s velocity entries."""
    mask = np.ones(shape, dtype=np.float32)
    mask[list(VELOCITY_INDICES[env_id])] = 0.0
    return mask


def make_no_velocity(env_id: str, **kwargs: Any) -> gym.Env:
    """``env_id`` with its velocities zeroed (the entry point of the NoVel ids; the registration
    adds the time limit, so the inner env is made without its own)."""
    env = gym.make(env_id, **kwargs).unwrapped
    mask = velocity_mask(env_id, env.observation_space.shape)
    return gym.wrappers.TransformObservation(env, lambda obs: (obs * mask).astype(np.float32, copy=False),
                                             env.observation_space)


def register_no_velocity_ids() -> None:
    for env_id in VELOCITY_INDICES:
        new_id = no_velocity_id(env_id)
        if new_id in gym.registry or env_id not in gym.registry:
            continue
        gym.register(new_id, entry_point="pgrl.envs.pomdp:make_no_velocity", kwargs={"env_id": env_id},
                     max_episode_steps=gym.spec(env_id).max_episode_steps)


register_no_velocity_ids()
