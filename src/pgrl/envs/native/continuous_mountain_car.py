"""MountainCarContinuous-v0 as a batched torch environment (Gymnasium's ``Continuous_MountainCarEnv``).

State = observation = [position, velocity]; the force is the action clipped to [-1, 1];
reward 100 on reaching the goal (position >= 0.45 and velocity >= 0) minus 0.1 * action**2
of the *unclipped* action (as Gymnasium); truncated after 999 steps.  Like Gymnasium, the
state is rounded to float32 after every step (its ``self.state`` is a float32 array), even
when ``dtype=torch.float64``.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from pgrl.envs.native._base import NativeVecEnv


class ContinuousMountainCar(NativeVecEnv):
    """N MountainCarContinuous-v0 copies; actions float [N, 1] (force, clipped to [-1, 1])."""

    env_id = "MountainCarContinuous-v0"
    registered_max_episode_steps = 999
    state_dim = 2

    min_action = -1.0
    max_action = 1.0
    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.45
    goal_velocity = 0.0
    power = 0.0015

    def _make_spaces(self) -> tuple[spaces.Box, spaces.Box]:
        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        action_space = spaces.Box(low=self.min_action, high=self.max_action, shape=(1,), dtype=np.float32)
        return spaces.Box(low=low, high=high, dtype=np.float32), action_space

    def _sample_initial_state(self, n: int) -> torch.Tensor:
        position = self._uniform(-0.6, -0.4, (n,))
        return torch.stack((position, torch.zeros_like(position)), dim=1)

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position, velocity = state.unbind(1)
        action = actions[:, 0]
        force = action.clamp(self.min_action, self.max_action)
        velocity = velocity + (force * self.power - 0.0025 * torch.cos(3 * position))
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        velocity = velocity.masked_fill((position == self.min_position) & (velocity < 0), 0.0)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        rewards = terminated.to(self.dtype) * 100.0 - action.square() * 0.1
        next_state = torch.stack((position, velocity), dim=1).to(torch.float32).to(self.dtype)
        return next_state, rewards, terminated
