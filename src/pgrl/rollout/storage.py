"""Preallocated time-major rollout storage.

| field      | shape               | meaning                                                   |
|------------|---------------------|-----------------------------------------------------------|
| obs        | [T, N, *obs_shape]  | observation the action was chosen from (normalized)       |
| actions    | [T, N, *act_shape]  | sampled action (unclipped, as the log-prob was taken)     |
| log_probs  | [T, N]              | log pi_old(a_t | s_t)                                     |
| rewards    | [T, N]              | reward (scaled when reward scaling is on)                 |
| terminated | [T, N] bool         | the episode ended in a terminal state                     |
| truncated  | [T, N] bool         | the episode was cut by a time limit                       |
| next_obs   | [T, N, *obs_shape]  | observation reached before any reset (for V(s'))          |
| valid      | [T, N] bool         | the step belongs to a counted episode (episode mode)      |

Algorithms read these fields directly and flatten [T, N] to [T*N] only in their update.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Rollout:
    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_obs: torch.Tensor
    valid: torch.Tensor
    #: per-rollout episode statistics (finished episodes, raw rewards), on the host
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    #: a callback stopped collection part-way (the rollout is then not trained on)
    stopped: bool = False

    @classmethod
    def allocate(
        cls,
        n_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        device: torch.device,
    ) -> Rollout:
        def zeros(*shape, dtype=torch.float32):
            return torch.zeros((n_steps, num_envs, *shape), dtype=dtype, device=device)

        return cls(
            obs=zeros(*obs_shape),
            actions=zeros(*action_shape, dtype=action_dtype),
            log_probs=zeros(),
            rewards=zeros(),
            terminated=zeros(dtype=torch.bool),
            truncated=zeros(dtype=torch.bool),
            next_obs=zeros(*obs_shape),
            valid=torch.ones((n_steps, num_envs), dtype=torch.bool, device=device),
        )

    @property
    def n_steps(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_envs(self) -> int:
        return self.rewards.shape[1]

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
            self.next_obs[:length],
            self.valid[:length],
            self.episode_returns,
            self.episode_lengths,
        )
