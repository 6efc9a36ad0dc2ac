"""PPO: clipped surrogate, optional value clipping, adaptive KL penalty, target-KL early stop.

Loss per minibatch (SB3 scaling, so rl-zoo hyperparameters transfer):
  L = -E[min(r A, clip(r, 1-eps, 1+eps) A)] + vf_coef * E[(V - R)^2] - ent_coef * E[H] + beta * E[KL]
where r = pi(a|s) / pi_old(a|s).  With clip_range_vf the value term is the larger of the
clipped and unclipped squared errors.  beta (kl_coef) adapts after each update: doubled when
the measured KL exceeds 1.5 * kl_target, halved below kl_target / 1.5; kl_coef 0 disables it.

``ppo_loss`` is the one minibatch loss: every reduction runs over the last dim, so one seed's
[B] tensors give scalar terms and K stacked seeds' [K, B] give [K] terms (pgrl.batched sums
them, so each seed's gradient is its own).  ``adapt_kl_coef`` is the one beta rule.

With an LSTM policy (MlpLstmPolicy, ...) the minibatches are whole sequences from the states
stored while acting (pgrl.algos.common.batches); the loss is the same.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from pgrl.algos.base import Algorithm
from pgrl.algos.common import (
    Capabilities,
    Metrics,
    batches,
    check_finite,
    explained_variance,
    flat_masks,
    flatten,
    normalize,
    optimizer_step,
    rollout_values,
    rows,
    set_learning_rate,
)
from pgrl.config import AlgoConfig, PositiveSchedule, make_schedule
from pgrl.fast import ppo_fast_path
from pgrl.returns import gae


class PPOConfig(AlgoConfig):
    n_steps: int = Field(2048, gt=0)
    batch_size: int = Field(64, gt=0)
    n_epochs: int = Field(10, gt=0)
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0)
    clip_range: PositiveSchedule = 0.2
    clip_range_vf: PositiveSchedule | None = None
    normalize_advantage: bool = True
    vf_coef: float = Field(0.5, ge=0.0)
    target_kl: float | None = Field(None, gt=0.0)
    kl_coef: float = Field(0.0, ge=0.0, description="initial adaptive KL penalty beta (0: off)")
    kl_target: float = Field(0.01, gt=0.0)

    @model_validator(mode="after")
    def _batch_divides(self):
        if (self.n_steps * self.n_envs) % self.batch_size:
            raise ValueError(
                f"n_steps * n_envs = {self.n_steps * self.n_envs} is not a multiple of batch_size "
                f"{self.batch_size}; pick a batch_size that divides it"
            )
        return self


def clipped_surrogate(log_probs, old_log_probs, advantages, clip_range: float):
    """-E[min(r A, clip(r) A)] and the ratio r; zero gradient where the clip is active."""
    ratio = torch.exp(log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * advantages
    return -torch.min(unclipped, clipped).mean(dim=-1), ratio


def value_loss(values, old_values, returns, clip_range_vf: float | None):
    if clip_range_vf is None:
        return (returns - values).pow(2).mean(dim=-1)
    clipped = old_values + torch.clamp(values - old_values, -clip_range_vf, clip_range_vf)
    return torch.max((returns - values).pow(2), (returns - clipped).pow(2)).mean(dim=-1)


def ppo_loss(
    c: PPOConfig,
    log_probs: torch.Tensor,
    entropy: torch.Tensor,
    values: torch.Tensor,
    old_log_probs: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip_range: float,
    clip_range_vf: float | None,
    kl_coef: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], Metrics]:
    """One minibatch: inputs [B] (or [K, B]) -> (loss, terms, metrics), each value scalar (or [K]).

    ``log_probs``, ``entropy`` and ``values`` come from the policy being trained, the rest from
    the rollout.  terms (differentiable): policy, value, entropy (the negated mean entropy), kl
    (a non-negative estimator of KL(old || new)); loss = policy + vf_coef value + ent_coef
    entropy (+ kl_coef kl when ``kl_coef`` is given: a float, or [K] per seed).  metrics are the
    detached terms and the clip fraction under pgrl's metric names.
    """
    adv = normalize(advantages) if c.normalize_advantage else advantages
    pg_loss, ratio = clipped_surrogate(log_probs, old_log_probs, adv, clip_range)
    vf_loss = value_loss(values, old_values, returns, clip_range_vf)
    entropy_loss = -entropy.mean(dim=-1)
    log_ratio = log_probs - old_log_probs
    kl = ((ratio - 1.0) - log_ratio).mean(dim=-1)
    loss = pg_loss + c.vf_coef * vf_loss + c.ent_coef * entropy_loss
    if kl_coef is not None:
        loss = loss + kl_coef * kl
    terms = {"policy": pg_loss, "value": vf_loss, "entropy": entropy_loss, "kl": kl}
    metrics: Metrics = {
        "loss/policy": pg_loss.detach(),
        "loss/value": vf_loss.detach(),
        "loss/entropy": entropy_loss.detach(),
        "stats/approx_kl": kl.detach(),
        "stats/clip_frac": ((ratio - 1.0).abs() > clip_range).float().mean(dim=-1),
    }
    return loss, terms, metrics


def adapt_kl_coef(kl_coef, measured, kl_target: float):
    """beta doubled when the measured KL exceeds 1.5 kl_target, halved below kl_target / 1.5.

    Floats for one seed; [K] tensors (float64, so the comparison is a lone run's) for K seeds.
    """
    if isinstance(kl_coef, torch.Tensor):
        measured = measured.double()
        factor = torch.where(measured > 1.5 * kl_target, 2.0, torch.where(measured < kl_target / 1.5, 0.5, 1.0))
        return kl_coef * factor
    if measured > 1.5 * kl_target:
        return kl_coef * 2.0
    if measured < kl_target / 1.5:
        return kl_coef / 2.0
    return kl_coef


class PPO(Algorithm):
    """Proximal policy optimization: clipped surrogate over minibatch epochs of each rollout (SB3's PPO)."""

    name = "ppo"
    config_class = PPOConfig
    # pgrl.batched trains K seeds through ppo_loss; LSTM policies get whole-sequence minibatches (common.batches)
    capabilities = Capabilities(batched_seeds=True, recurrent=True, fast_update=True)

    def _setup(self) -> None:
        self.optimizer = self.make_optimizer(self.policy.parameters(), self.lr_schedule(1.0))
        self.clip_schedule = make_schedule(self.config.clip_range)
        vf = self.config.clip_range_vf
        self.clip_vf_schedule = make_schedule(vf) if vf is not None else None
        self.kl_coef = self.config.kl_coef
        self.fast = ppo_fast_path(self, self.config.batch_size)  # None: the torch path below

    def training_state(self) -> dict:
        return {**super().training_state(), "kl_coef": self.kl_coef}

    def load_training_state(self, state: dict, tensors: dict) -> None:
        super().load_training_state(state, tensors)
        self.kl_coef = float(state["kl_coef"])

    def _epochs(self, rollout, data, clip: float, clip_vf: float | None, kl_coef: float | None):
        """The minibatch epochs in torch: (per-minibatch metrics summed, minibatches stepped, target-KL stop)."""
        c = self.config
        obs, actions, masks, old_log_probs, values, advantages, returns = data
        sums: dict[str, torch.Tensor] = {}
        n_updates = 0
        for _ in range(c.n_epochs):
            for idx, seqs in batches(self.policy, rollout, c.batch_size):
                log_probs, entropy, new_values = self.policy.evaluate(obs[idx], actions[idx], rows(masks, idx), seqs)
                loss, _, terms = ppo_loss(
                    c, log_probs, entropy, new_values, old_log_probs[idx], values[idx], advantages[idx],
                    returns[idx], clip, clip_vf, kl_coef,
                )
                if c.target_kl is not None and bool(terms["stats/approx_kl"] > 1.5 * c.target_kl):
                    return sums, n_updates, True
                optimizer_step(self.optimizer, loss, max_grad_norm=c.max_grad_norm)
                n_updates += 1
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value
        return sums, n_updates, False

    def update(self, rollout, progress_remaining: float) -> Metrics:
        c = self.config
        set_learning_rate(self.optimizer, self.lr_schedule(progress_remaining))
        clip = self.clip_schedule(progress_remaining)
        clip_vf = self.clip_vf_schedule(progress_remaining) if self.clip_vf_schedule else None
        values, next_values = rollout_values(self.policy, rollout, self.fast.layout.value if self.fast else None)
        advantages = gae(
            rollout.rewards, values, next_values, rollout.terminated, rollout.truncated, c.gamma, c.gae_lambda
        )
        returns = advantages + values
        obs, actions, old_log_probs = (
            flatten(rollout.obs),
            flatten(rollout.actions),
            flatten(rollout.log_probs),
        )
        advantages, returns, values = flatten(advantages), flatten(returns), flatten(values)
        masks = flat_masks(rollout)
        kl_coef = self.kl_coef if self.kl_coef > 0 else None

        data = (obs, actions, masks, old_log_probs, values, advantages, returns)
        if self.fast is not None:  # pgrl.fast: every epoch's minibatches in compiled kernels
            sums, n_updates, stopped = self.fast.update(c, *data, clip, clip_vf, kl_coef)
        else:
            sums, n_updates, stopped = self._epochs(rollout, data, clip, clip_vf, kl_coef)
        metrics: Metrics = {key: value / max(n_updates, 1) for key, value in sums.items()}
        if n_updates:  # one check per update instead of a host sync per minibatch
            check_finite(self, metrics["loss/policy"] + metrics["loss/value"])
        if self.kl_coef > 0 and "stats/approx_kl" in metrics:
            self.kl_coef = adapt_kl_coef(self.kl_coef, float(metrics["stats/approx_kl"]), c.kl_target)
            metrics["stats/kl_coef"] = self.kl_coef
        metrics["stats/explained_var"] = explained_variance(values, returns)
        metrics["stats/n_updates"] = float(n_updates)
        metrics["stats/early_stop"] = float(stopped)
        metrics["train/learning_rate"] = self.lr_schedule(progress_remaining)
        metrics["train/clip_range"] = clip
        return metrics
