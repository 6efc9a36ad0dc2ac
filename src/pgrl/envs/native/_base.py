"""Shared machinery of the batched torch re-implementations of Gymnasium's classic control.

A concrete environment only says what its physics is: how to sample an initial state
(``_sample_initial_state``), how to step every copy at once (``_transition``) and how a state
is observed (``_observe``).  ``NativeVecEnv`` adds what every environment shares: the random
stream (a ``torch.Generator`` on the env's device), the elapsed-step counters, truncation by
time limit exactly as Gymnasium's ``TimeLimit`` does it, and the automatic reset of finished
rows with ``torch.where``, so that ``step`` is a fixed sequence of tensor ops with no Python
loop over copies and no host synchronisation.

Shapes (N = num_envs, D = state_dim):

| attribute / value  | shape            | dtype               |
|--------------------|------------------|---------------------|
| state              | [N, D]           | dtype (float32/64)  |
| elapsed_steps      | [N]              | int64               |
| obs, final_obs     | [N, *obs_shape]  | dtype               |
| rewards            | [N]              | dtype               |
| terminated, truncated | [N]           | bool                |
| actions (Discrete) | [N]              | any integer dtype   |
| actions (Box)      | [N, act_dim]     | any float dtype     |
"""

from __future__ import annotations

import abc

import gymnasium as gym
import torch

from pgrl.envs.base import Step, VecEnv
from pgrl.errors import EnvError

SUPPORTED_DTYPES = (torch.float32, torch.float64)


class NativeVecEnv(VecEnv):
    """N copies of one classic-control environment simulated together in torch.

    Args:
        num_envs: number of copies N.
        seed: seed of the random stream used by ``reset()`` without a seed and by automatic
            resets; ``None`` draws a non-deterministic seed.
        device: where the state lives and every op runs ("cpu", "cuda", "cuda:1", ...).
        dtype: float dtype of the state, observations and rewards. float32 (default) for
            training; float64 reproduces Gymnasium's float64 arithmetic (used by the tests).
        max_episode_steps: time limit; ``None`` means the limit Gymnasium registers for the id.

    Public attributes: ``env_id``, ``num_envs``, ``device``, ``dtype``, ``max_episode_steps``,
    ``single_observation_space``, ``single_action_space``, ``state`` [N, state_dim] (the
    physical state Gymnasium's ``env.unwrapped.state`` holds, same order), ``elapsed_steps``
    [N] int64 (what ``TimeLimit._elapsed_steps`` holds) and ``generator``.  ``state`` and
    ``elapsed_steps`` may be assigned (whole or by row) to put copies in chosen states.
    """

    env_id: str
    registered_max_episode_steps: int
    state_dim: int

    def __init__(
        self,
        num_envs: int,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = None,
    ) -> None:
        if not _is_positive_int(num_envs):
            raise EnvError(f"num_envs must be a positive integer, got {num_envs!r}.")
        if dtype not in SUPPORTED_DTYPES:
            raise EnvError(f"dtype of a native env must be torch.float32 or torch.float64, got {dtype!r}.")
        if max_episode_steps is None:
            max_episode_steps = self.registered_max_episode_steps
        if not _is_positive_int(max_episode_steps):
            raise EnvError(f"max_episode_steps must be a positive int or None, not {max_episode_steps!r}.")
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())

        self.num_envs = num_envs
        self.device = device
        self.dtype = dtype
        self.max_episode_steps = max_episode_steps
        self.single_observation_space, self.single_action_space = self._make_spaces()

        action_space = self.single_action_space
        self._discrete = isinstance(action_space, gym.spaces.Discrete)
        if self._discrete:
            self._action_shape: tuple[int, ...] = (num_envs,)
            self._action_dtype = torch.int64
        else:
            self._action_shape = (num_envs, *action_space.shape)
            self._action_dtype = dtype

        self.generator = torch.Generator(device=device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self.group_generators: list[torch.Generator] | None = None
        self.state = torch.zeros(num_envs, self.state_dim, dtype=dtype, device=device)
        self.elapsed_steps = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self._has_reset = False

    # ------------------------------------------------------------------ what an env defines
    @abc.abstractmethod
    def _make_spaces(self) -> tuple[gym.Space, gym.Space]:
        """The single-copy observation and action spaces, equal to Gymnasium's."""

    @abc.abstractmethod
    def _sample_initial_state(self, n: int) -> torch.Tensor:
        """n initial states [n, state_dim] drawn with ``self.generator``."""

    @abc.abstractmethod
    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        """Observations [n, *obs_shape] of states [n, state_dim]; may return ``state`` itself."""

    @abc.abstractmethod
    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(next_state [N, D], rewards [N], terminated [N] bool) of one step of every copy."""

    # ------------------------------------------------------------------ shared machinery
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every copy and return obs [N, *obs_shape].

        With a seed the generator is re-seeded first, so the same seed gives the same initial
        states and, fed the same actions, the same trajectories (automatic resets included).
        The batch shares one stream: the states of copy i depend on (seed, num_envs, device
        type), not on ``seed + i`` alone, and can't match numpy's streams.
        """
        if seed is not None:
            if self.group_generators is not None:
                raise EnvError("this env has one random stream per block of rows (split_streams); "
                               "reset it without a seed")
            self.generator.manual_seed(seed)
        self.state = self._sample_initial_state(self.num_envs)
        self.elapsed_steps = torch.zeros_like(self.elapsed_steps)
        self._has_reset = True
        return self._observe_state()

    def step(self, actions: torch.Tensor) -> Step:
        """Advance every copy one step; rows whose episode ended start a new one.

        ``truncated`` is ``elapsed_steps >= max_episode_steps`` after the step, even where
        ``terminated`` is also true (as Gymnasium's TimeLimit).  Where an episode ended,
        ``final_obs`` holds the observation the step reached and ``obs`` the first observation
        of the next episode; elsewhere the two are equal.  New initial states are drawn for
        every row on every step (so no host sync is needed) and kept only where needed.
        """
        if not self._has_reset:
            raise RuntimeError(f"Call reset() on the native {self.env_id} env before step().")
        actions = self._as_actions(actions)
        next_state, rewards, terminated = self._transition(self.state, actions)
        elapsed_steps = self.elapsed_steps + 1
        truncated = elapsed_steps >= self.max_episode_steps
        done = terminated | truncated
        final_obs = self._observe(next_state)

        initial_state = self._sample_initial_state(self.num_envs)
        self.state = torch.where(done.unsqueeze(1), initial_state, next_state)
        self.elapsed_steps = elapsed_steps.masked_fill(done, 0)
        obs = self._observe_state()
        return Step(obs=obs, rewards=rewards, terminated=terminated, truncated=truncated, final_obs=final_obs)

    def split_streams(self, seeds: list[int]) -> None:
        """Give each of len(seeds) equal blocks of rows its own random stream, seeded like a run's.

        Block k then draws exactly what a ``num_envs // len(seeds)`` env reset with ``seeds[k]``
        would draw, so K runs simulated as one batch start and restart their episodes as K
        separate runs do (``pgrl.batched``).  ``reset()`` then takes no seed.
        """
        if not seeds or self.num_envs % len(seeds):
            raise EnvError(f"num_envs={self.num_envs} does not split into {len(seeds)} equal blocks")
        self.group_generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]

    def get_state(self) -> dict[str, torch.Tensor]:
        """Everything that determines future steps: state, elapsed_steps and the generator's state."""
        return {
            "state": self.state.clone(),
            "elapsed_steps": self.elapsed_steps.clone(),
            "generator": self.generator.get_state(),
            "has_reset": torch.tensor(self._has_reset),
        }

    def set_state(self, saved: dict[str, torch.Tensor]) -> None:
        """Inverse of ``get_state``; ValueError when a tensor has another shape or dtype."""
        for key, like in (("state", self.state), ("elapsed_steps", self.elapsed_steps)):
            if saved[key].shape != like.shape or saved[key].dtype != like.dtype:
                raise ValueError(f"env.{key} has shape {tuple(saved[key].shape)} {saved[key].dtype}, "
                                 f"this env needs {tuple(like.shape)} {like.dtype}")
        generator = saved["generator"]
        if generator.dtype != torch.uint8 or generator.dim() != 1:
            raise ValueError("env.generator is not a generator state")
        self.generator.set_state(generator.cpu())
        self.state = saved["state"].to(self.device).clone()
        self.elapsed_steps = saved["elapsed_steps"].to(self.device).clone()
        self._has_reset = bool(saved.get("has_reset", torch.tensor(True)))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs}, device={self.device}, "
            f"dtype={self.dtype}, max_episode_steps={self.max_episode_steps})"
        )

    # ------------------------------------------------------------------ helpers for envs
    def _observe_state(self) -> torch.Tensor:
        """Observations of ``self.state``, never sharing its memory (callers may edit obs in place)."""
        obs = self._observe(self.state)
        return obs.clone() if obs is self.state else obs

    def _as_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions as a tensor on the env's device: int64 [N] (Discrete) or dtype [N, act_dim] (Box)."""
        actions = torch.as_tensor(actions, device=self.device)
        if tuple(actions.shape) != self._action_shape:
            raise ValueError(
                f"{self.env_id} with num_envs={self.num_envs} expects actions of shape "
                f"{list(self._action_shape)}, got {list(actions.shape)}."
            )
        if self._discrete and (actions.is_floating_point() or actions.is_complex()):
            raise ValueError(
                f"{self.env_id} has a Discrete action space and expects integer actions, got {actions.dtype}."
            )
        return actions.to(self._action_dtype)

    def _uniform(self, low: float, high: float, size: tuple[int, ...]) -> torch.Tensor:
        """Uniform samples in [low, high) of shape ``size`` in ``dtype``, from ``self.generator``."""
        samples = torch.empty(size, dtype=self.dtype, device=self.device)
        if self.group_generators is None:
            return samples.uniform_(low, high, generator=self.generator)
        blocks = samples.view(len(self.group_generators), -1, *size[1:]).unbind(0)
        for block, generator in zip(blocks, self.group_generators, strict=True):
            block.uniform_(low, high, generator=generator)
        return samples


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
