"""A3C: asynchronous advantage actor-critic with Hogwild! workers (Mnih et al., 2016).

The runner (pgrl.loops.hogwild) starts ``n_workers`` processes on the shared model; each owns
``n_envs`` environments and a local copy of the policy, and loops without any lock over
``worker_update``:

  1. copy the shared parameters into the local model;
  2. collect n_steps x n_envs transitions with it (episodes continue across rollouts; returns stop
     at terminations and bootstrap at truncations and at the rollout's end);
  3. targets on the local model: n-step returns (gae_lambda = 1) or GAE(lambda) + V;
  4. L = -E[A log pi] + vf_coef E[(R - V)^2] - ent_coef E[H]; backward locally; clip;
  5. hand the local gradients to the shared model's ``.grad`` (every update) and step the shared
     optimizer, whose moments and step counts live in shared memory (pgrl.optim).

With ``vf_learning_rate`` actor and critic get separate shared optimizers (``optimizer`` and
``vf_optimizer``, separate clipping), as in the reference chapter.  Checkpoints hold the shared
model and both optimizers' moments and step counts; a resumed run continues from them with fresh
episodes (not bit-exact: the workers' interleaving is the scheduler's).  The trained shared model
stays ``self.policy``, so predict, save and ``A3C.load`` work as for every algorithm.  A3C runs
on CPU; ``update`` performs one worker step in-process (the synchronous equivalent).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from pgrl.algos.a2c import actor_critic_targets, advantage_actor_critic_loss
from pgrl.algos.base import Algorithm
from pgrl.algos.common import (
    Capabilities,
    Metrics,
    explained_variance,
    flat_masks,
    flatten,
    normalize,
    require_own_extractors,
    set_learning_rate,
)
from pgrl.config import AlgoConfig, Schedule, make_schedule
from pgrl.errors import ConfigError, TrainingError
from pgrl.optim import SharedAdam, SharedRMSprop
from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.rollout.storage import Rollout


class A3CConfig(AlgoConfig):
    n_workers: int = Field(2, gt=0, description="worker processes (each one core)")
    n_envs: int = Field(1, gt=0, description="environments per worker")
    n_steps: int = Field(5, gt=0, description="steps of each env between two updates of a worker")
    learning_rate: Schedule = 7e-4
    vf_learning_rate: Schedule | None = Field(None, description="separate critic optimizer's rate")
    optimizer: Literal["adam", "rmsprop"] = "adam"
    vf_optimizer: Literal["adam", "rmsprop"] | None = None
    gae_lambda: float = Field(1.0, ge=0.0, le=1.0)
    ent_coef: float = Field(0.01, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    normalize_advantage: bool = False
    target_return: float | None = Field(None, description="stop once the last 100 episodes average this")


def shared_optimizer(kind: str, params, lr: float) -> torch.optim.Optimizer:
    if kind == "rmsprop":
        return SharedRMSprop(params, lr=lr, alpha=0.99, eps=1e-5)
    return SharedAdam(params, lr=lr, eps=1e-5)


def a3c_loss(policy: ActorCriticPolicy, rollout: Rollout, c: A3CConfig) -> tuple[torch.Tensor, Metrics]:
    """The combined loss of one rollout, with targets from the same (local) model."""
    targets = actor_critic_targets(policy, rollout, c.gamma, c.gae_lambda)
    old_values, advantages, returns = (flatten(x) for x in targets)
    if c.normalize_advantage:
        advantages = normalize(advantages)
    obs, actions = flatten(rollout.obs), flatten(rollout.actions)
    log_probs, entropy, new_values = policy.evaluate(obs, actions, flat_masks(rollout))
    loss, pg_loss, vf_loss, ent_loss = advantage_actor_critic_loss(
        log_probs, entropy, new_values, advantages, returns, c.vf_coef, c.ent_coef
    )
    metrics: Metrics = {
        "loss/policy": pg_loss.detach(),
        "loss/value": vf_loss.detach(),
        "loss/entropy": ent_loss.detach(),
        "stats/explained_var": explained_variance(old_values, returns),
    }
    return loss, metrics


def hogwild_step(
    local: torch.nn.Module,
    shared: torch.nn.Module,
    optimizers: list,
    clip_groups: list,
    loss: torch.Tensor,
    max_grad_norm: float | None,
) -> torch.Tensor | None:
    """Backward on ``local``, clip each group, give the grads to ``shared``, step its optimizers."""
    local.zero_grad(set_to_none=True)
    loss.backward()
    norms = [torch.nn.utils.clip_grad_norm_(group, max_grad_norm) for group in clip_groups if max_grad_norm]
    if shared is not local:
        # Every update: the shared parameters' .grad is private to this process and is replaced
        # by this update's local gradient (set_to_none above makes a fresh tensor each time).
        for local_param, shared_param in zip(local.parameters(), shared.parameters(), strict=True):
            shared_param.grad = local_param.grad
    for optimizer in optimizers:
        optimizer.step()
    return torch.stack(norms).norm() if norms else None


def learning_rates(c: A3CConfig) -> list:
    """One schedule per optimizer, in ``A3C.optimizer_list`` order."""
    rates = [c.learning_rate] if c.vf_learning_rate is None else [c.learning_rate, c.vf_learning_rate]
    return [make_schedule(rate) for rate in rates]


def worker_update(local: ActorCriticPolicy, shared: ActorCriticPolicy, optimizers: list, clip_groups: list,
                  rollout: Rollout, c: A3CConfig, progress_remaining: float, step: int) -> Metrics:
    """One Hogwild worker step: loss on ``local``, gradients onto ``shared``, shared optimizers' step."""
    for optimizer, schedule in zip(optimizers, learning_rates(c), strict=True):
        set_learning_rate(optimizer, schedule(progress_remaining))
    loss, metrics = a3c_loss(local, rollout, c)
    if not bool(torch.isfinite(loss)):
        raise TrainingError(nan_message(float(loss), step))
    norm = hogwild_step(local, shared, optimizers, clip_groups, loss, c.max_grad_norm)
    if norm is not None:
        metrics["stats/grad_norm"] = norm
    metrics["train/learning_rate"] = optimizers[0].param_groups[0]["lr"]
    return metrics


def nan_message(value: float, step: int) -> str:
    return f"a3c loss became {value} at step {step}; lower learning_rate or max_grad_norm, or turn on normalize_reward"


class A3C(Algorithm):
    """Asynchronous advantage actor-critic: Hogwild! worker processes step shared optimizers without locks."""

    name = "a3c"
    config_class = A3CConfig
    capabilities = Capabilities(runner="hogwild", ray="gradients", devices=("cpu",), exact_resume=False,
                                recurrent_note="Its Hogwild workers own their loops; use a2c, its synchronous twin.")
    worker_update = staticmethod(worker_update)  # what pgrl.loops.hogwild's workers run

    def __init__(self, policy: str | None = None, env="CartPole-v1", *, device: str | torch.device = "cpu", **kwargs):
        if str(device) not in ("cpu", "auto"):
            raise ConfigError(f"a3c workers share the model in CPU memory; use device 'cpu', not {device!r}")
        super().__init__(policy, env, device="cpu", **kwargs)

    @classmethod
    def from_spaces(cls, observation_space, action_space, *, device: str | torch.device = "cpu", **kwargs):
        if str(device) not in ("cpu", "auto"):
            raise ConfigError(f"a3c workers share the model in CPU memory; use device 'cpu', not {device!r}")
        return super().from_spaces(observation_space, action_space, device="cpu", **kwargs)

    def _setup(self) -> None:
        c = self.config
        if c.normalize:
            raise ConfigError(
                "a3c does not support normalize=True (workers would race on shared observation statistics); "
                "use a2c or ppo for normalized observations"
            )
        self.policy.share_memory()
        self.vf_optimizer = None
        if c.vf_learning_rate is None:
            self.optimizer = shared_optimizer(c.optimizer, self.policy.parameters(), self.lr_schedule(1.0))
            return
        if self.policy.shared:
            raise ConfigError(
                "vf_learning_rate needs separate actor and critic networks; set policy_kwargs.shared=false "
                "or drop vf_learning_rate"
            )
        require_own_extractors(self)
        vf_lr = make_schedule(c.vf_learning_rate)(1.0)
        self.optimizer = shared_optimizer(c.optimizer, self.policy.actor_parameters(), self.lr_schedule(1.0))
        self.vf_optimizer = shared_optimizer(c.vf_optimizer or c.optimizer, self.policy.critic_parameters(), vf_lr)

    def optimizer_list(self) -> list[torch.optim.Optimizer]:
        """The shared optimizers in order (actor or both first, critic second), one per schedule."""
        return [opt for opt in (self.optimizer, self.vf_optimizer) if opt is not None]

    def schedules(self) -> list:
        return learning_rates(self.config)

    def update(self, rollout: Rollout, progress_remaining: float) -> Metrics:
        """One worker step done in this process on the shared model (no asynchrony)."""
        optimizers = self.optimizer_list()
        groups = [group["params"] for optimizer in optimizers for group in optimizer.param_groups]
        return worker_update(self.policy, self.policy, optimizers, groups, rollout, self.config,
                             progress_remaining, self.num_timesteps)


__all__ = ["A3C", "A3CConfig", "a3c_loss", "hogwild_step", "shared_optimizer", "worker_update"]
