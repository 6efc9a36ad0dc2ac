"""One-step actor-critic: an update after every step of N environments, on the TD(0) error.

  delta = r + gamma * (1 - terminated) * V(s') - V(s)       (V(s') from the final observation
                                                             when a time limit cut the episode)
  actor:  L = -mean(delta log pi(a|s)) - ent_coef * mean(H)
  critic: L = mean(delta^2)
Actor and critic have their own optimizers (learning_rate, vf_learning_rate); a shared network
(policy_kwargs.shared) trains on the summed loss with one optimizer at learning_rate.
"""

from __future__ import annotations

from pydantic import Field

from pgrl.algos.base import Algorithm
from pgrl.algos.common import (
    Capabilities,
    Metrics,
    check_finite,
    flat_masks,
    flatten,
    normalize,
    optimizer_step,
    require_own_extractors,
    set_learning_rate,
)
from pgrl.config import AlgoConfig, Schedule, make_schedule
from pgrl.returns import td_errors


class ActorCriticConfig(AlgoConfig):
    separate_optimizers = True  # actor and critic steps: an extractor each (see AlgoConfig)
    n_envs: int = Field(16, gt=0)
    learning_rate: Schedule = 5e-4
    vf_learning_rate: Schedule = 1e-3
    ent_coef: float = Field(0.0, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0.0)
    normalize_advantage: bool = False


class ActorCritic(Algorithm):
    """One-step actor-critic: an actor and a critic update after every step, on the TD(0) error."""

    name = "actor_critic"
    config_class = ActorCriticConfig
    # Ray ships rollouts of n_steps x envs; a one-step update would wait on the cluster every step.
    capabilities = Capabilities(ray=None, recurrent_note="It updates after every single step, so there is no "
                                "sequence to backpropagate through.")

    def rollout_steps(self) -> int:
        return 1  # an update after every step

    def _setup(self) -> None:
        c = self.config
        self.vf_schedule = make_schedule(c.vf_learning_rate)
        if self.policy.shared:  # one trunk, one optimizer over the summed loss
            self.optimizer = self.make_optimizer(self.policy.parameters(), self.lr_schedule(1.0))
            self.vf_optimizer = None
        else:
            require_own_extractors(self)
            self.optimizer = self.make_optimizer(self.policy.actor_parameters(), self.lr_schedule(1.0))
            self.vf_optimizer = self.make_optimizer(self.policy.critic_parameters(), self.vf_schedule(1.0))

    def update(self, rollout, progress_remaining: float) -> Metrics:
        c = self.config
        set_learning_rate(self.optimizer, self.lr_schedule(progress_remaining))
        if self.vf_optimizer is not None:
            set_learning_rate(self.vf_optimizer, self.vf_schedule(progress_remaining))
        obs, actions = flatten(rollout.obs), flatten(rollout.actions)
        log_probs, entropy, values = self.policy.evaluate(obs, actions, flat_masks(rollout))
        next_values = self.policy.value(flatten(rollout.next_observations())).detach()
        deltas = td_errors(flatten(rollout.rewards), values, next_values, flatten(rollout.terminated), c.gamma)
        advantages = deltas.detach()
        if c.normalize_advantage:
            advantages = normalize(advantages)
        policy_loss = -(advantages * log_probs).mean()
        entropy_loss = -entropy.mean()
        value_loss = deltas.pow(2).mean()
        check_finite(self, policy_loss + value_loss)
        actor_loss = policy_loss + c.ent_coef * entropy_loss
        if self.vf_optimizer is None:
            optimizer_step(self.optimizer, actor_loss + value_loss, max_grad_norm=c.max_grad_norm)
        else:
            optimizer_step(self.optimizer, actor_loss, max_grad_norm=c.max_grad_norm)
            optimizer_step(self.vf_optimizer, value_loss, max_grad_norm=c.max_grad_norm)
        return {
            "loss/policy": policy_loss.detach(),
            "loss/value": value_loss.detach(),
            "loss/entropy": entropy_loss.detach(),
        }
