"""REINFORCE: Monte-Carlo policy gradient without a baseline.

Each update uses one whole episode from each of the n_envs environments (n_envs = 1 is the
textbook one-episode-per-update form).  Never bootstraps: a time-limit cut ends the return.
  L = -sum_t w_t G_t log pi(a_t|s_t) / (number of steps),  w_t = gamma^t if gamma_weighting else 1
"""

from __future__ import annotations

from pydantic import Field

from pgrl.algos.base import Algorithm
from pgrl.algos.common import Capabilities, Metrics, check_finite, normalize, optimizer_step, rows, set_learning_rate
from pgrl.config import AlgoConfig, Schedule
from pgrl.returns import discount_weights, reward_to_go


class REINFORCEConfig(AlgoConfig):
    n_envs: int = Field(1, gt=0, description="episodes per update")
    learning_rate: Schedule = 7e-4
    max_grad_norm: float | None = Field(None, gt=0.0)
    gamma_weighting: bool = Field(False, description="weigh step t by gamma^t (the discounted objective)")
    normalize_returns: bool = Field(False, description="standardize returns over the batch (a baseline in disguise)")


def monte_carlo_terms(algo: Algorithm, rollout, normalize_returns: bool):
    """(log_probs, entropy, values, returns, weights, valid) flattened to the valid steps of whole episodes."""
    c = algo.config
    returns = reward_to_go(rollout.rewards, rollout.dones, c.gamma)
    weights = discount_weights(rollout.dones, c.gamma, rollout.rewards.dtype) if c.gamma_weighting else None
    valid = rollout.valid
    log_probs, entropy, values = algo.policy.evaluate(rollout.obs[valid], rollout.actions[valid],
                                                         rows(rollout.action_masks, valid))
    returns = returns[valid]
    if normalize_returns:
        returns = normalize(returns)
    return log_probs, entropy, values, returns, (weights[valid] if weights is not None else None)


class REINFORCE(Algorithm):
    """Monte-Carlo policy gradient on whole episodes, without a baseline."""

    name = "reinforce"
    config_class = REINFORCEConfig
    capabilities = Capabilities(recurrent_note="It learns from whole episodes of a feed-forward policy; "
                                "use ppo or a2c for memory.")
    rollout_mode = "episodes"

    def _setup(self) -> None:
        self.optimizer = self.make_optimizer(self.policy.actor_parameters(), self.lr_schedule(1.0))

    def update(self, rollout, progress_remaining: float) -> Metrics:
        c = self.config
        set_learning_rate(self.optimizer, self.lr_schedule(progress_remaining))
        log_probs, entropy, _, returns, weights = monte_carlo_terms(self, rollout, c.normalize_returns)
        scale = returns if weights is None else weights * returns
        policy_loss = -(scale * log_probs).mean()
        entropy_loss = -entropy.mean()
        loss = policy_loss + c.ent_coef * entropy_loss
        check_finite(self, loss)
        optimizer_step(self.optimizer, loss, max_grad_norm=c.max_grad_norm)
        return {
            "loss/policy": policy_loss.detach(),
            "loss/entropy": entropy_loss.detach(),
            "train/learning_rate": self.lr_schedule(progress_remaining),
        }
