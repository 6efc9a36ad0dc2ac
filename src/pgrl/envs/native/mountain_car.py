"""MountainCar-v0 as a batched torch environment (Gymnasium's ``MountainCarEnv``).

State = observation = [position, velocity]; reward -1.0 every step; terminated when
position >= 0.5 and velocity >= 0; truncated after 200 steps.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from pgrl.envs.native._base import NativeVecEnv


class MountainCar(NativeVecEnv):
    """N MountainCar-v0 copies; actions int64 [N] in {0: accelerate left, 1: none, 2: right}."""

    env_id = "MountainCar-v0"
    registered_max_episode_steps = 200
    state_dim = 2

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    goal_velocity = 0.0
    force = 0.001
    gravity = 0.0025

    def _make_spaces(self) -> tuple[spaces.Box, spaces.Discrete]:
        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        return spaces.Box(low, high, dtype=np.float32), spaces.Discrete(3)

    def _sample_initial_state(self, n: int) -> torch.Tensor:
        position = self._uniform(-0.6, -0.4, (n,))
        return torch.stack((position, torch.zeros_like(position)), dim=1)

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position, velocity = state.unbind(1)
        velocity = velocity + ((actions - 1).to(self.dtype) * self.force + torch.cos(3 * position) * (-self.gravity))
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        velocity = velocity.masked_fill((position == self.min_position) & (velocity < 0), 0.0)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        rewards = torch.full_like(position, -1.0)
        return torch.stack((position, velocity), dim=1), rewards, terminated
