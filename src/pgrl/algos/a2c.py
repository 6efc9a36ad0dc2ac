"""A2C: synchronous advantage actor-critic over N environments stepped together.

One gradient step per rollout of n_steps x n_envs on the combined loss
  L = -E[A log pi(a|s)] + vf_coef * E[(R - V)^2] - ent_coef * E[H]
with R the n-step bootstrapped return (gae_lambda = 1) or GAE(lambda) + V.  Shared or separate
networks come from policy_kwargs; RMSprop (default, as in SB3) or Adam.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pgrl.algos.base import Algorithm
from pgrl.algos.common import (
    Capabilities,
    Metrics,
    check_finite,
    env_major,
    explained_variance,
    flat_masks,
    flatten,
    normalize,
    optimizer_step,
    rollout_values,
    rows,
    sequences,
    set_learning_rate,
)
from pgrl.config import AlgoConfig, Schedule
from pgrl.returns import gae, n_step_returns


class A2CConfig(AlgoConfig):
    n_steps: int = Field(5, gt=0)
    learning_rate: Schedule = 7e-4
    gae_lambda: float = Field(1.0, ge=0.0, le=1.0)
    vf_coef: float = Field(0.5, ge=0.0)
    normalize_advantage: bool = False
    optimizer: Literal["adam", "rmsprop"] = "rmsprop"


def actor_critic_targets(policy, rollout, gamma: float, gae_lambda: float):
    """(values, advantages, returns), all [T, N], without gradient: n-step returns when
    gae_lambda == 1, GAE(lambda) otherwise (the two agree at lambda = 1; see returns.py)."""
    values, next_values = rollout_values(policy, rollout)
    if gae_lambda == 1.0:
        returns = n_step_returns(rollout.rewards, next_values, rollout.terminated, rollout.truncated, gamma)
        return values, returns - values, returns
    advantages = gae(rollout.rewards, values, next_values, rollout.terminated, rollout.truncated, gamma, gae_lambda)
    return values, advantages, advantages + values


def advantage_actor_critic_loss(log_probs, entropy, values, advantages, returns, vf_coef, ent_coef):
    """The three A2C terms, returned separately and combined."""
    policy_loss = -(advantages.detach() * log_probs).mean()
    value_loss = (returns.detach() - values).pow(2).mean()
    entropy_loss = -entropy.mean()
    return policy_loss + vf_coef * value_loss + ent_coef * entropy_loss, policy_loss, value_loss, entropy_loss


class A2C(Algorithm):
    """Synchronous advantage actor-critic: one gradient step per rollout of n_steps x n_envs (SB3's A2C)."""

    name = "a2c"
    config_class = A2CConfig
    capabilities = Capabilities(recurrent=True)  # LSTM policies: one pass over every env's whole rollout

    def _setup(self) -> None:
        self.optimizer = self.make_optimizer(self.policy.parameters(), self.lr_schedule(1.0))

    def update(self, rollout, progress_remaining: float) -> Metrics:
        c = self.config
        set_learning_rate(self.optimizer, self.lr_schedule(progress_remaining))
        targets = actor_critic_targets(self.policy, rollout, c.gamma, c.gae_lambda)
        old_values, advantages, returns = (flatten(x) for x in targets)
        if c.normalize_advantage:
            advantages = normalize(advantages)
        obs, actions, masks, seqs = flatten(rollout.obs), flatten(rollout.actions), flat_masks(rollout), None
        if self.policy.recurrent:  # every env's steps in order, cut into sequences at episode starts
            idx = env_major(rollout.n_steps, rollout.num_envs, rollout.rewards.device)
            obs, actions, masks = rows(obs, idx), rows(actions, idx), rows(masks, idx)
            old_values, advantages, returns = old_values[idx], advantages[idx], returns[idx]
            seqs = sequences(rollout, idx)
        log_probs, entropy, values = self.policy.evaluate(obs, actions, masks, seqs)
        loss, pg_loss, vf_loss, ent_loss = advantage_actor_critic_loss(
            log_probs, entropy, values, advantages, returns, c.vf_coef, c.ent_coef
        )
        check_finite(self, loss)
        grad_norm = optimizer_step(self.optimizer, loss, max_grad_norm=c.max_grad_norm)
        metrics: Metrics = {
            "loss/policy": pg_loss.detach(),
            "loss/value": vf_loss.detach(),
            "loss/entropy": ent_loss.detach(),
            "stats/explained_var": explained_variance(old_values, returns),
            "train/learning_rate": self.lr_schedule(progress_remaining),
        }
        if grad_norm is not None:
            metrics["stats/grad_norm"] = grad_norm
        return metrics
