"""Gymnasium vector environments behind pgrl's tensor VecEnv interface.

This is the only place numpy meets the rest of pgrl: observations, rewards and flags of all N
copies are converted once per step.  The vector env runs in Gymnasium's SAME_STEP autoreset mode,
so the observation an episode ended on arrives with the step (``info["final_obs"]``) and a
truncated step can bootstrap from it.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from pgrl.envs.base import Step, VecEnv


class GymVecEnv(VecEnv):
    def __init__(
        self,
        env_fns: list[Callable[[], gym.Env]],
        env_id: str,
        vectorization: str = "sync",
        device: torch.device | str = "cpu",
    ):
        mode = gym.vector.AutoresetMode.SAME_STEP
        if vectorization == "async":
            self.vec = gym.vector.AsyncVectorEnv(env_fns, shared_memory=True, autoreset_mode=mode)
        else:
            self.vec = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=mode)
        self.env_id = env_id
        self.num_envs = self.vec.num_envs
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space
        self.device = torch.device(device)
        spec = self.vec.spec if getattr(self.vec, "spec", None) is not None else None
        self.max_episode_steps = getattr(spec, "max_episode_steps", None)
        self._discrete_actions = isinstance(self.single_action_space, gym.spaces.Discrete)

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        seeds = None if seed is None else [seed + i for i in range(self.num_envs)]
        obs, _ = self.vec.reset(seed=seeds)
        return self._obs(obs)

    def step(self, actions: torch.Tensor) -> Step:
        actions_np = actions.detach().cpu().numpy()
        if self._discrete_actions:
            actions_np = actions_np.astype(np.int64)
        obs, rewards, terminated, truncated, info = self.vec.step(actions_np)
        final_obs = obs
        if "_final_obs" in info and info["_final_obs"].any():
            final_obs = np.array(obs, copy=True)
            for i in np.flatnonzero(info["_final_obs"]):
                final_obs[i] = info["final_obs"][i]
        return Step(
            obs=self._obs(obs),
            rewards=torch.as_tensor(rewards, dtype=torch.float32, device=self.device),
            terminated=torch.as_tensor(terminated, dtype=torch.bool, device=self.device),
            truncated=torch.as_tensor(truncated, dtype=torch.bool, device=self.device),
            final_obs=self._obs(final_obs),
        )

    def close(self) -> None:
        self.vec.close()
