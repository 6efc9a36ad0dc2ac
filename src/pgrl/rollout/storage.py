"""Preallocated time-major rollout storage.

| field      | shape               | meaning                                                   |
|------------|---------------------|-----------------------------------------------------------|
| obs        | [T, N, *obs_shape]  | observation the action was chosen from (normalized)       |
| actions    | [T, N, *act_shape]  | sampled action (unclipped, flat, as the log-prob was taken) |
| log_probs  | [T, N]              | log pi_old(a_t | s_t)                                     |
| rewards    | [T, N]              | reward (scaled when reward scaling is on)                 |
| terminated | [T, N] bool         | the episode ended in a terminal state                     |
| truncated  | [T, N] bool         | the episode was cut by a time limit                       |
| next_obs   | [T, N, *obs_shape]  | observation reached before any reset (for V(s')); None when compact |
| valid      | [T, N] bool         | the step belongs to a counted episode (episode mode)      |
| action_masks | [T, N, n] bool or None | valid actions at the step (envs with action masks)   |
| states     | [T, N, state_size] or None | LSTM policies: the recurrent state the step acted from |
| episode_starts | [T, N] bool or None | LSTM policies: the step starts an episode (its state was zeroed) |
| values     | [T, N] or None      | LSTM policies: V(obs) computed while acting, from that step's state |

Observations are stored as pgrl.obs lays them out: float32, uint8 for images (a quarter of the
memory), a ``TensorDict`` of those for Dict spaces.  Spaces with images are stored *compact*:
no next_obs, since it equals obs[t + 1] except after the last step (``last_obs``) and where an
episode ended (``finals``: (t, env indices, final observations)); ``next_observations()``
assembles the full tensor when an algorithm needs it, and ``rollout_values`` evaluates only the
distinct observations.  8 envs x 128 steps of 4x84x84 Atari frames then take 29 MB, not 58.

LSTM policies' values depend on the state, so the collector computes them while acting: ``values``,
V of the observation after the last step (``last_values``) and, where a time limit cut an
episode, V of its final observation from the state of that step (``bootstrap``: (t, env
indices, values)); ``next_values()`` assembles V(next_obs) from them.

Algorithms read these fields directly and flatten [T, N] to [T*N] only in their update.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import torch

from pgrl.obs import allocate, has_image


@dataclass
class Rollout:
    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_obs: torch.Tensor | None
    valid: torch.Tensor
    #: per-rollout episode statistics (finished episodes, raw rewards), on the host
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    #: a callback stopped collection part-way (the rollout is then not trained on)
    stopped: bool = False
    #: compact storage (next_obs None): the observation after the last step, and final observations
    last_obs: torch.Tensor | None = None
    finals: list = field(default_factory=list)
    #: the env's action masks at each step (False: invalid), None when it has none
    action_masks: torch.Tensor | None = None
    #: LSTM policies (see the module docstring)
    states: torch.Tensor | None = None
    episode_starts: torch.Tensor | None = None
    values: torch.Tensor | None = None
    last_values: torch.Tensor | None = None
    bootstrap: list = field(default_factory=list)

    @classmethod
    def allocate(
        cls,
        n_steps: int,
        num_envs: int,
        observation_space: gym.Space,
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        device: torch.device,
    ) -> Rollout:
        def zeros(*shape, dtype=torch.float32):
            return torch.zeros((n_steps, num_envs, *shape), dtype=dtype, device=device)

        return cls(
            obs=allocate(observation_space, (n_steps, num_envs), device),
            actions=zeros(*action_shape, dtype=action_dtype),
            log_probs=zeros(),
            rewards=zeros(),
            terminated=zeros(dtype=torch.bool),
            truncated=zeros(dtype=torch.bool),
            next_obs=None if has_image(observation_space) else allocate(observation_space, (n_steps, num_envs), device),
            valid=torch.ones((n_steps, num_envs), dtype=torch.bool, device=device),
        )

    @property
    def n_steps(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_envs(self) -> int:
        return self.rewards.shape[1]

    def next_observations(self):
        """next_obs [T, N, ...], assembled from obs, last_obs and finals for compact storage."""
        if self.next_obs is not None:
            return self.next_obs
        nxt = torch.cat([self.obs[1:], self.last_obs[None]])
        for t, envs, final in self.finals:
            nxt[t, envs] = final
        return nxt

    def next_values(self) -> torch.Tensor:
        """LSTM policies: V(next_obs) [T, N] from values, last_values and bootstrap."""
        nxt = torch.cat([self.values[1:], self.last_values[None]])
        for t, envs, values in self.bootstrap:
            nxt[t, envs] = values
        return nxt

    @property
    def dones(self) -> torch.Tensor:
        return self.terminated | self.truncated

    def truncate(self, length: int) -> Rollout:
        """The first ``length`` steps (views, no copy)."""
        return Rollout(
            self.obs[:length],
            self.actions[:length],
            self.log_probs[:length],
            self.rewards[:length],
            self.terminated[:length],
            self.truncated[:length],
            None if self.next_obs is None else self.next_obs[:length],
            self.valid[:length],
            self.episode_returns,
            self.episode_lengths,
            last_obs=self.last_obs if length == self.n_steps or self.next_obs is not None else self.obs[length],
            finals=[final for final in self.finals if final[0] < length],
            action_masks=None if self.action_masks is None else self.action_masks[:length],
        )
