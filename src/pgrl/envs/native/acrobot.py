"""Acrobot-v1 as a batched torch environment (Gymnasium's ``AcrobotEnv``, "book" dynamics).

State [theta1, theta2, dtheta1, dtheta2] as Gymnasium's ``env.state``; observation
[cos(theta1), sin(theta1), cos(theta2), sin(theta2), dtheta1, dtheta2]; one step is a single
RK4 step of dt = 0.2 s, then the angles are wrapped to [-pi, pi] and the velocities bounded to
+-4 pi and +-9 pi; reward -1 per step, 0 on the terminating step (-cos(theta1) -
cos(theta1 + theta2) > 1); truncated after 500 steps.  No torque noise (Gymnasium's default).
"""

from __future__ import annotations

from math import pi

import numpy as np
import torch
from gymnasium import spaces

from pgrl.envs.native._base import NativeVecEnv

cos = torch.cos
sin = torch.sin


def wrap(x: torch.Tensor, m: float, M: float) -> torch.Tensor:  # noqa: N803 - Gymnasium's names
    """Gymnasium's ``wrap`` (shift by whole periods M - m into [m, M]) without its while loops.

    Exactly Gymnasium's result when one shift suffices (x - diff is computed the same way).
    """
    diff = M - m
    shifts = torch.ceil((x - M) / diff).clamp_min(0) - torch.ceil((m - x) / diff).clamp_min(0)
    return x - shifts * diff


class Acrobot(NativeVecEnv):
    """N Acrobot-v1 copies; actions int64 [N] in {0: torque -1, 1: torque 0, 2: torque +1}."""

    env_id = "Acrobot-v1"
    registered_max_episode_steps = 500
    state_dim = 4

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_LENGTH_2 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * pi
    MAX_VEL_2 = 9 * pi

    def _make_spaces(self) -> tuple[spaces.Box, spaces.Discrete]:
        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=np.float32)
        return spaces.Box(low=-high, high=high, dtype=np.float32), spaces.Discrete(3)

    def _sample_initial_state(self, n: int) -> torch.Tensor:
        # Gymnasium draws in float64 and stores the initial state as float32.
        return self._uniform(-0.1, 0.1, (n, 4)).to(torch.float32).to(self.dtype)

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        angles = state[:, :2]
        trig = torch.stack((cos(angles), sin(angles)), dim=2).flatten(1)  # cos1, sin1, cos2, sin2
        return torch.cat((trig, state[:, 2:]), dim=1)

    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        torque = (actions - 1).to(self.dtype)
        ns = self._rk4(state, torque)
        angles = wrap(ns[:, :2], -pi, pi)
        dtheta1 = ns[:, 2].clamp(-self.MAX_VEL_1, self.MAX_VEL_1)
        dtheta2 = ns[:, 3].clamp(-self.MAX_VEL_2, self.MAX_VEL_2)
        next_state = torch.cat((angles, dtheta1.unsqueeze(1), dtheta2.unsqueeze(1)), dim=1)
        theta1, theta2 = angles.unbind(1)
        terminated = -cos(theta1) - cos(theta2 + theta1) > 1.0
        rewards = terminated.to(self.dtype) - 1.0
        return next_state, rewards, terminated

    def _rk4(self, y0: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        """One classical RK4 step of length dt, as Gymnasium's ``rk4(derivs, y0, [0, dt])``."""
        dt = self.dt - 0
        dt2 = dt / 2.0
        k1 = self._dsdt(y0, torque)
        k2 = self._dsdt(y0 + dt2 * k1, torque)
        k3 = self._dsdt(y0 + dt2 * k2, torque)
        k4 = self._dsdt(y0 + dt * k3, torque)
        return y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    def _dsdt(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Time derivative [N, 4] of states s [N, 4] under torques a [N] (Gymnasium's "book" _dsdt)."""
        m1 = self.LINK_MASS_1
        m2 = self.LINK_MASS_2
        l1 = self.LINK_LENGTH_1
        lc1 = self.LINK_COM_POS_1
        lc2 = self.LINK_COM_POS_2
        I1 = self.LINK_MOI  # noqa: N806 - Gymnasium's names
        I2 = self.LINK_MOI  # noqa: N806
        g = 9.8
        theta1, theta2, dtheta1, dtheta2 = s.unbind(1)
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos(theta2)) + I2
        phi2 = m2 * lc2 * g * cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin(theta2) - phi2) / (
            m2 * lc2**2 + I2 - d2**2 / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=1)
