"""VPG: REINFORCE with a learned state-value baseline and an entropy bonus.

Still Monte-Carlo (never bootstraps).  The baseline has its own network and optimizer
(vf_learning_rate, vf_optimizer: RMSprop by default as in the reference chapter), fitted to the
reward-to-go for n_vf_steps gradient steps per batch of episodes.
  policy:  L = -mean(w_t (G_t - V(s_t)) log pi(a_t|s_t)) - ent_coef * mean(H)
  value:   L = 0.5 * mean((G_t - V(s_t))^2)
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from pgrl.algos.base import Algorithm
from pgrl.algos.common import (
    Capabilities,
    Metrics,
    check_finite,
    explained_variance,
    normalize,
    optimizer_step,
    require_own_extractors,
    set_learning_rate,
)
from pgrl.algos.reinforce import monte_carlo_terms
from pgrl.config import AlgoConfig, Schedule, make_schedule
from pgrl.errors import ConfigError


class VPGConfig(AlgoConfig):
    separate_optimizers = True  # actor and critic steps: an extractor each (see AlgoConfig)
    n_envs: int = Field(1, gt=0, description="episodes per update")
    learning_rate: Schedule = 7e-4
    vf_learning_rate: Schedule = 1e-3
    vf_optimizer: Literal["adam", "rmsprop"] = "rmsprop"
    n_vf_steps: int = Field(1, gt=0)
    ent_coef: float = Field(0.001, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0.0)
    gamma_weighting: bool = Field(False, description="weigh step t by gamma^t (the discounted objective)")
    normalize_advantage: bool = False


class VPG(Algorithm):
    """Vanilla policy gradient: REINFORCE with a learned state-value baseline and an entropy bonus."""

    name = "vpg"
    config_class = VPGConfig
    capabilities = Capabilities(recurrent_note="Its critic is fitted by many small value steps on shuffled samples, "
                                "which would cut the sequences.")
    rollout_mode = "episodes"

    def _setup(self) -> None:
        c = self.config
        if self.policy.shared:
            raise ConfigError("vpg keeps its baseline in its own network; set policy_kwargs.shared=false")
        self.vf_schedule = make_schedule(c.vf_learning_rate)
        require_own_extractors(self)
        self.optimizer = self.make_optimizer(self.policy.actor_parameters(), self.lr_schedule(1.0))
        self.vf_optimizer = self.make_optimizer(self.policy.critic_parameters(), self.vf_schedule(1.0), c.vf_optimizer)

    def update(self, rollout, progress_remaining: float) -> Metrics:
        c = self.config
        set_learning_rate(self.optimizer, self.lr_schedule(progress_remaining))
        set_learning_rate(self.vf_optimizer, self.vf_schedule(progress_remaining))
        log_probs, entropy, values, returns, weights = monte_carlo_terms(self, rollout, normalize_returns=False)
        advantages = returns - values.detach()
        if c.normalize_advantage:
            advantages = normalize(advantages)
        scale = advantages if weights is None else weights * advantages
        policy_loss = -(scale * log_probs).mean()
        entropy_loss = -entropy.mean()
        loss = policy_loss + c.ent_coef * entropy_loss
        check_finite(self, loss)
        optimizer_step(self.optimizer, loss, max_grad_norm=c.max_grad_norm)

        obs = rollout.obs[rollout.valid]
        for step in range(c.n_vf_steps):
            predicted = values if step == 0 else self.policy.value(obs)
            value_loss = 0.5 * (returns - predicted).pow(2).mean()
            optimizer_step(self.vf_optimizer, value_loss, max_grad_norm=c.max_grad_norm)
        return {
            "loss/policy": policy_loss.detach(),
            "loss/value": value_loss.detach(),
            "loss/entropy": entropy_loss.detach(),
            "stats/explained_var": explained_variance(values.detach(), returns),
            "train/learning_rate": self.lr_schedule(progress_remaining),
        }


__all__ = ["VPG", "VPGConfig", "torch"]
