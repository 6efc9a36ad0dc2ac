"""Pendulum-v1 as a batched torch environment (Gymnasium's ``PendulumEnv``, g = 10).

State [theta, theta_dot] (theta not wrapped, as Gymnasium's ``env.state``); observation
[cos(theta), sin(theta), theta_dot]; reward -(angle_normalize(theta)**2 + 0.1 * theta_dot**2
+ 0.001 * u**2) with the torque u clipped to [-2, 2]; never terminates; truncated after 200 steps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces

from pgrl.envs.native._base import NativeVecEnv


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to [-pi, pi) exactly as Gymnasium's ``angle_normalize``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class Pendulum(NativeVecEnv):
    """N Pendulum-v1 copies; actions float [N, 1] (torque, clipped to [-2, 2])."""

    env_id = "Pendulum-v1"
    registered_max_episode_steps = 200
    state_dim = 2

    max_speed = 8
    max_torque = 2.0
    dt = 0.05
    g = 10.0
    m = 1.0
    l = 1.0  # noqa: E741 - Gymnasium's name

    def _make_spaces(self) -> tuple[spaces.Box, spaces.Box]:
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        action_space = spaces.Box(low=-self.max_torque, high=self.max_torque, shape=(1,), dtype=np.float32)
        return spaces.Box(low=-high, high=high, dtype=np.float32), action_space

    def _sample_initial_state(self, n: int) -> torch.Tensor:
        theta = self._uniform(-math.pi, math.pi, (n,))
        theta_dot = self._uniform(-1.0, 1.0, (n,))
        return torch.stack((theta, theta_dot), dim=1)

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        theta, theta_dot = state.unbind(1)
        return torch.stack((torch.cos(theta), torch.sin(theta), theta_dot), dim=1)

    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Same expressions, in the same order, as PendulumEnv.step.
        th, thdot = state.unbind(1)
        g, m, l, dt = self.g, self.m, self.l, self.dt  # noqa: E741
        u = actions[:, 0].clamp(-self.max_torque, self.max_torque)
        costs = angle_normalize(th).square() + 0.1 * thdot.square() + 0.001 * u.square()
        newthdot = thdot + (3 * g / (2 * l) * torch.sin(th) + 3.0 / (m * l**2) * u) * dt
        newthdot = newthdot.clamp(-self.max_speed, self.max_speed)
        newth = th + newthdot * dt
        terminated = torch.zeros_like(th, dtype=torch.bool)
        return torch.stack((newth, newthdot), dim=1), -costs, terminated
