"""CartPole-v1 as a batched torch environment (Gymnasium's ``CartPoleEnv``, Euler integrator).

State = observation = [x, x_dot, theta, theta_dot]; reward 1.0 on every step including the
terminating one (``sutton_barto_reward=False``, Gymnasium's default); terminated when
|x| > 2.4 or |theta| > 12 degrees; truncated after 500 steps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces

from pgrl.envs.native._base import NativeVecEnv


class CartPole(NativeVecEnv):
    """N CartPole-v1 copies; actions int64 [N] in {0: push left, 1: push right}."""

    env_id = "CartPole-v1"
    registered_max_episode_steps = 500
    state_dim = 4

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def _make_spaces(self) -> tuple[spaces.Box, spaces.Discrete]:
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf], dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32), spaces.Discrete(2)

    def _sample_initial_state(self, n: int) -> torch.Tensor:
        return self._uniform(-0.05, 0.05, (n, 4))

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Same expressions, in the same order, as CartPoleEnv.step (so float64 matches it).
        x, x_dot, theta, theta_dot = state.unbind(1)
        force = (actions == 1).to(self.dtype) * (2 * self.force_mag) - self.force_mag
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        # Euler: each of x, x_dot, theta, theta_dot += tau * its derivative (one op for all four).
        next_state = state + self.tau * torch.stack((x_dot, xacc, theta_dot, thetaacc), dim=1)
        x, theta = next_state[:, 0], next_state[:, 2]
        terminated = (x.abs() > self.x_threshold) | (theta.abs() > self.theta_threshold_radians)
        rewards = torch.ones_like(x)
        return next_state, rewards, terminated
