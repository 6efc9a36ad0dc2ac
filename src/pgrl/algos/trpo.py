"""TRPO: a natural-gradient policy step inside a KL trust region, and a regressed value function.

Each update maximizes the surrogate L(theta) = E[pi(a|s) / pi_old(a|s) * A] subject to
E_s[KL(pi_old || pi)] <= delta (target_kl):

1. g = grad L at theta_old; solve F s = g by conjugate gradient, where F v is the Hessian of the
   mean KL times v (double backprop through the actor; F is the Fisher matrix at pi = pi_old),
   plus cg_damping * v.
2. Full step  s * sqrt(2 delta / s^T F s); try fractions 1, f, f^2, ... (f the shrinking factor)
   and keep the first whose measured KL <= delta and whose surrogate improves; if none does,
   the old parameters are restored.
3. The critic takes n_critic_updates epochs of minibatch MSE regression to the GAE returns with
   Adam at learning_rate on critic_parameters().

Only actor_parameters() take the trust-region step.  With a shared trunk (policy_kwargs.shared)
the critic's regression also moves the trunk, and so the policy, outside the trust region.
"""

from __future__ import annotations

import torch
from pydantic import Field

from pgrl.algos.base import Algorithm
from pgrl.algos.common import (
    Capabilities,
    Metrics,
    check_finite,
    explained_variance,
    flat_masks,
    flatten,
    minibatches,
    normalize,
    optimizer_step,
    require_own_extractors,
    rollout_values,
    rows,
    set_learning_rate,
)
from pgrl.config import AlgoConfig, Schedule
from pgrl.optim import conjugate_gradient, flat_grad, flat_params, set_flat_params
from pgrl.returns import gae


class TRPOConfig(AlgoConfig):
    separate_optimizers = True  # actor and critic steps: an extractor each (see AlgoConfig)
    learning_rate: Schedule = Field(1e-3, description="value-function (critic) learning rate")
    n_steps: int = Field(2048, gt=0)
    batch_size: int = Field(128, gt=0, description="value-function minibatch")
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0)
    cg_max_steps: int = Field(15, gt=0)
    cg_damping: float = Field(0.1, ge=0.0)
    line_search_shrinking_factor: float = Field(0.8, gt=0.0, lt=1.0)
    line_search_max_iter: int = Field(10, gt=0)
    n_critic_updates: int = Field(10, gt=0)
    normalize_advantage: bool = True
    target_kl: float = Field(0.01, gt=0.0)
    sub_sampling_factor: int = Field(1, gt=0, description="policy step on every k-th sample")
    max_grad_norm: float | None = Field(None, gt=0.0, description="critic gradient clipping (None: off)")


def surrogate(dist, actions, old_log_probs, advantages) -> torch.Tensor:
    """E[pi(a|s) / pi_old(a|s) * A], to be maximized."""
    return (torch.exp(dist.log_prob(actions) - old_log_probs) * advantages).mean()


def fisher_vector_product(mean_kl: torch.Tensor, params, damping: float):
    """v -> (H + damping I) v, H the Hessian of ``mean_kl`` in ``params`` (its graph is kept)."""
    grad_kl = flat_grad(mean_kl, params, retain_graph=True, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        return flat_grad(grad_kl @ v, params, retain_graph=True) + damping * v

    return product


class TRPO(Algorithm):
    """Trust-region policy optimization: a natural-gradient step within a KL bound, and a regressed critic."""

    name = "trpo"
    config_class = TRPOConfig
    capabilities = Capabilities(recurrent_note="Its conjugate-gradient and line-search passes re-run the whole batch "
                                "many times; use ppo.")

    def _setup(self) -> None:
        require_own_extractors(self)
        critic = self.policy.critic_parameters()
        self.critic_optimizer = self.make_optimizer(critic, self.lr_schedule(1.0), "adam")

    def update(self, rollout, progress_remaining: float) -> Metrics:
        c = self.config
        values, next_values = rollout_values(self.policy, rollout)
        advantages = gae(
            rollout.rewards, values, next_values, rollout.terminated, rollout.truncated, c.gamma, c.gae_lambda
        )
        returns = flatten(advantages + values)
        obs, actions, values = flatten(rollout.obs), flatten(rollout.actions), flatten(values)
        advantages = flatten(advantages)
        k = c.sub_sampling_factor
        masks = rows(flat_masks(rollout), slice(None, None, k))
        metrics = self.policy_step(obs[::k], actions[::k], advantages[::k], masks)
        metrics["loss/value"] = self.critic_step(obs, returns, progress_remaining)
        metrics["stats/explained_var"] = explained_variance(values, returns)
        metrics["train/learning_rate"] = self.lr_schedule(progress_remaining)
        return metrics

    def policy_step(self, obs, actions, advantages, masks=None) -> Metrics:
        c = self.config
        params = self.policy.actor_parameters()
        if c.normalize_advantage:
            advantages = normalize(advantages)
        with torch.no_grad():
            old_dist = self.policy.distribution(obs, masks).detach()
            old_log_probs = old_dist.log_prob(actions)
        dist = self.policy.distribution(obs, masks)
        old_surrogate = surrogate(dist, actions, old_log_probs, advantages)
        mean_kl = old_dist.kl(dist).mean()
        check_finite(self, old_surrogate)
        grad = flat_grad(old_surrogate, params, retain_graph=True)
        fvp = fisher_vector_product(mean_kl, params, c.cg_damping)
        direction = conjugate_gradient(fvp, grad, c.cg_max_steps)
        curvature = direction @ fvp(direction)  # s^T F s
        step = direction * torch.sqrt(2.0 * c.target_kl / curvature.clamp(min=1e-12))
        expected_improvement = grad @ step
        old_params = flat_params(params)
        old_surrogate = old_surrogate.detach()

        fraction, success = 1.0, False
        with torch.no_grad():
            for _ in range(c.line_search_max_iter):
                set_flat_params(params, old_params + fraction * step)
                dist = self.policy.distribution(obs, masks)
                kl = old_dist.kl(dist).mean()
                new_surrogate = surrogate(dist, actions, old_log_probs, advantages)
                if bool((kl <= c.target_kl) & (new_surrogate > old_surrogate)):
                    success = True
                    break
                fraction *= c.line_search_shrinking_factor
            if not success:
                set_flat_params(params, old_params)
                kl, new_surrogate, fraction = torch.zeros((), device=obs.device), old_surrogate, 0.0
        return {
            "loss/policy": -new_surrogate,
            "stats/approx_kl": kl,
            "stats/step_fraction": fraction,
            "stats/line_search_success": float(success),
            "stats/surrogate_improvement": new_surrogate - old_surrogate,
            "stats/expected_improvement": expected_improvement.detach(),
            "stats/entropy": old_dist.entropy().mean(),
        }

    def critic_step(self, obs, returns, progress_remaining: float) -> torch.Tensor:
        c = self.config
        set_learning_rate(self.critic_optimizer, self.lr_schedule(progress_remaining))
        params = self.policy.critic_parameters()
        total, n_batches = torch.zeros((), device=obs.device), 0
        for _ in range(c.n_critic_updates):
            for idx in minibatches(obs.shape[0], c.batch_size, obs.device):
                loss = (self.policy.value(obs[idx]) - returns[idx]).pow(2).mean()
                optimizer_step(self.critic_optimizer, loss, params, c.max_grad_norm)
                total, n_batches = total + loss.detach(), n_batches + 1
        value_loss = total / n_batches
        check_finite(self, value_loss)
        return value_loss
