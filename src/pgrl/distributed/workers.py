"""What runs inside a Ray actor: its own vector env, a policy copy and pgrl's Collector.

These are plain classes; ``pgrl.distributed`` turns them into actors with ``ray.remote`` when a
run starts, so importing pgrl never needs Ray.  An actor lives in its own process (one CPU,
one torch thread) and on any node of the cluster.

| call                         | sends (learner -> actor)        | returns (actor -> learner)                    |
|------------------------------|---------------------------------|-----------------------------------------------|
| RolloutWorker.collect        | weights ref (policy + obs stats)| Rollout [T, M] + raw-observation moments      |
| GradientWorker.compute       | weights ref, learner version    | gradients (one per parameter) + version + stats|

Seeds follow pgrl's rule: env i of worker w in a run with seed s is seeded with
s*1000 + w*M + i (M envs per worker), and the worker's torch RNG (action sampling) with
s*1000 + w*M, so a synchronous run on Ray with a fixed seed repeats itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

from pgrl.config import AlgoConfig
from pgrl.envs.make import make_env
from pgrl.envs.normalize import ObsNormalizer, RewardScaler, RunningMeanStd
from pgrl.policies import make_policy
from pgrl.rollout.collector import Collector
from pgrl.rollout.storage import Rollout


@dataclass(frozen=True)
class WorkerSpec:
    """Everything an actor needs to build its env and policy (sent once, at creation)."""

    algo: str
    env_id: str
    env_backend: str
    vectorization: str
    env_kwargs: dict | None
    config: AlgoConfig
    observation_space: gym.Space
    action_space: gym.Space
    seed: int
    envs_per_worker: int

    def worker_seed(self, rank: int, base: int | None = None) -> int:
        """Seed of env 0 of worker ``rank``; env i gets this + i (base: the run's seed*1000)."""
        return (self.seed * 1000 if base is None else base) + rank * self.envs_per_worker


class RecordingObsNormalizer(ObsNormalizer):
    """Normalizes with the learner's frozen statistics and records the raw observations' moments.

    The collector calls it with ``update=True`` once per step on the raw observations, exactly
    where the in-process normalizer would update its statistics; here those observations go into
    ``seen`` instead, which the learner merges into the one set of statistics it owns.
    """

    def __init__(self, shape: tuple[int, ...], clip: float):
        super().__init__(shape, clip=clip)
        self.seen = RunningMeanStd(shape, epsilon=0.0)

    def forward(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        if update:
            self.seen.update(obs)
        return super().forward(obs, update=False)

    def take_moments(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        moments = (self.seen.mean.clone(), self.seen.var.clone(), self.seen.count.clone())
        self.seen = RunningMeanStd(tuple(self.seen.mean.shape), epsilon=0.0)
        return moments


def merge_moments(stats: RunningMeanStd, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
    """Fold a worker's (mean, var, count) of raw observations into the learner's statistics."""
    b_count = count.to(stats.count)
    if float(b_count) == 0.0:
        return
    stats.merge(mean.to(stats.mean), var.to(stats.var), b_count)


@dataclass
class WorkerRollout:
    """One actor's rollout and, with normalize=True, the moments of the raw observations it saw."""

    rollout: Rollout
    obs_moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None


class _EnvWorker:
    """The part both actor kinds share: env, policy copy, collector, seeding, weights."""

    def __init__(self, spec: WorkerSpec, rank: int, normalize_obs: bool):
        torch.set_num_threads(1)  # one busy process per core; more threads only oversubscribe
        self.spec, self.rank = spec, rank
        c = spec.config
        self.env = make_env(spec.env_id, spec.envs_per_worker, backend=spec.env_backend,
                            vectorization=spec.vectorization, device="cpu", env_kwargs=spec.env_kwargs)
        self.policy = make_policy(c, spec.observation_space, spec.action_space)
        self.normalizer = (
            RecordingObsNormalizer(tuple(spec.observation_space.shape), c.clip_obs) if normalize_obs else None
        )
        # as Algorithm.collector() builds it
        scaler = RewardScaler(spec.envs_per_worker, c.gamma, clip=c.clip_reward or 10.0) if c.normalize_reward else None
        self.collector = Collector(self.env, self.policy, self.normalizer, scaler, sde_sample_freq=c.sde_sample_freq,
                                   clip_reward=c.clip_reward)
        seed = spec.worker_seed(rank)
        if _restarted():  # after a crash: other episodes than the ones this worker began with
            seed += 7919 * (os.getpid() % 100_000)
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Fresh episodes: env i seeded with seed + i, the action RNG with seed."""
        torch.manual_seed(seed)
        self.collector.reset(seed=seed)

    def pid(self) -> int:
        return os.getpid()

    def load_weights(self, weights: dict[str, Any]) -> None:
        self.policy.load_state_dict(weights["policy"])
        if self.normalizer is not None:
            self.normalizer.stats.load_state_dict(weights["obs_stats"])


def _restarted() -> bool:
    try:
        import ray

        return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # noqa: BLE001 - not inside a Ray actor
        return False


class RolloutWorker(_EnvWorker):
    """A rollout actor of the synchronous algorithms (A2C, PPO, TRPO, VPG, REINFORCE)."""

    def __init__(self, spec: WorkerSpec, rank: int):
        super().__init__(spec, rank, normalize_obs=spec.config.normalize)

    def collect(self, weights: dict[str, Any], n_steps: int | None, max_steps: int | None) -> WorkerRollout:
        """n_steps steps of each env (episodes continue), or with n_steps None one whole episode of each."""
        self.load_weights(weights)
        self.policy.train()
        if n_steps is not None:
            rollout = self.collector.collect(n_steps)
        else:
            rollout = self.collector.collect_episodes(max_steps)
        rollout = _owned(rollout)  # the collector reuses its storage; views would ship the whole buffer
        moments = self.normalizer.take_moments() if self.normalizer is not None else None
        return WorkerRollout(rollout, moments)


def _owned(rollout: Rollout) -> Rollout:
    fields = ("obs", "actions", "log_probs", "rewards", "terminated", "truncated", "next_obs", "valid")
    masks = rollout.action_masks
    return Rollout(*(getattr(rollout, name).clone() for name in fields),
                   list(rollout.episode_returns), list(rollout.episode_lengths),
                   action_masks=None if masks is None else masks.clone())


@dataclass
class Gradients:
    """One a3c worker step: gradients of the loss at weights ``version``, and what it saw."""

    grads: list[torch.Tensor]
    version: int
    steps: int
    metrics: dict[str, float]
    episode_returns: list[float]
    episode_lengths: list[int]


class GradientWorker(_EnvWorker):
    """An a3c actor: collects n_steps x n_envs and returns the gradient of A3C's own loss."""

    def __init__(self, spec: WorkerSpec, rank: int):
        super().__init__(spec, rank, normalize_obs=False)  # a3c refuses normalize=True
        c = spec.config
        self.clip_groups = (
            [list(self.policy.parameters())]
            if getattr(c, "vf_learning_rate", None) is None
            else [self.policy.actor_parameters(), self.policy.critic_parameters()]
        )

    def compute(self, weights: dict[str, Any], version: int) -> Gradients:
        from pgrl.algos.a3c import a3c_loss
        from pgrl.errors import TrainingError

        c = self.spec.config
        self.load_weights(weights)
        self.policy.train()
        rollout = self.collector.collect(c.n_steps)
        loss, metrics = a3c_loss(self.policy, rollout, c)
        if not bool(torch.isfinite(loss)):
            raise TrainingError(f"a3c loss became {float(loss)}; lower learning_rate or max_grad_norm, "
                                "or turn on normalize_reward")
        self.policy.zero_grad(set_to_none=True)
        loss.backward()
        if c.max_grad_norm:
            norms = [torch.nn.utils.clip_grad_norm_(group, c.max_grad_norm) for group in self.clip_groups]
            metrics["stats/grad_norm"] = torch.stack(norms).norm()
        grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in self.policy.parameters()]
        return Gradients(grads, version, rollout.n_steps * rollout.num_envs,
                         {key: float(value) for key, value in metrics.items()},
                         list(rollout.episode_returns), list(rollout.episode_lengths))
