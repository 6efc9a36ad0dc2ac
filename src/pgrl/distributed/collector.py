"""RayCollector: pgrl's Collector interface over K rollout actors, for the synchronous algorithms.

Per iteration the learner puts its weights into Ray's object store once (``ray.put``: policy
state dict, plus the observation statistics with normalize=True) and hands the same reference
to every actor.  Each actor loads them, collects n_steps from its M envs (or one whole episode
of each, for REINFORCE / VPG) and returns a time-major Rollout [T, M].  The learner concatenates
the K rollouts along the env axis into [T, K*M] (episode statistics in worker order), and the
algorithm's own ``update`` learns from it as from an in-process rollout.

Observation normalization: the learner owns the one set of running statistics.  Actors
normalize with the statistics of the current iteration (frozen while they collect) and return
the count, mean and variance of the raw observations they saw; the learner merges them in
worker order.  With normalize_reward each actor scales its rewards by its own running return
statistics (they start afresh when an actor restarts or a run resumes).

Checkpoints hold what the learner owns (policy, optimizers, observation statistics, counters);
actors' env states are not saved: a resumed run starts fresh episodes on every worker, seeded
from the run's seed and step, as a resumed run on Gymnasium envs does.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pgrl.distributed.pool import WorkerGroup
from pgrl.distributed.workers import RolloutWorker, WorkerRollout, WorkerSpec, merge_moments
from pgrl.rollout.storage import Rollout

_FIELDS = ("obs", "actions", "log_probs", "rewards", "terminated", "truncated", "next_obs", "valid")


def worker_spec(algo, envs_per_worker: int) -> WorkerSpec:
    return WorkerSpec(algo.name, algo.env_id, algo.env_backend, algo.vectorization, algo.env_kwargs, algo.config,
                      algo.observation_space, algo.action_space, algo.seed, envs_per_worker)


def envs_per_worker(num_envs: int, num_workers: int, requested: int | None) -> int:
    """M: the requested number, or the config's n_envs split over the workers (rounded up)."""
    return requested if requested is not None else max(1, math.ceil(num_envs / num_workers))


def concat_rollouts(parts: list[Rollout], device: torch.device) -> Rollout:
    """K rollouts [T_k, M_k] -> one [max T_k, sum M_k]; shorter ones (episode mode) padded as invalid steps."""
    length = max(part.n_steps for part in parts)
    columns = {name: [] for name in _FIELDS}
    for part in parts:
        pad = length - part.n_steps
        for name in _FIELDS:
            value = getattr(part, name)
            if pad:
                filler = torch.zeros((pad, *value.shape[1:]), dtype=value.dtype, device=value.device)
                value = torch.cat([value, filler])  # zeros: valid False, neither terminated nor truncated
            columns[name].append(value)
    merged = Rollout(*(torch.cat(columns[name], dim=1).to(device) for name in _FIELDS))
    if parts[0].action_masks is not None:  # padded steps are invalid anyway: any mask will do
        masks = [torch.cat([p.action_masks, p.action_masks[-1:].expand(length - p.n_steps, *p.action_masks.shape[1:])])
                 for p in parts]
        merged.action_masks = torch.cat(masks, dim=1).to(device)
    merged.episode_returns = [r for part in parts for r in part.episode_returns]
    merged.episode_lengths = [n for part in parts for n in part.episode_lengths]
    return merged


class NoEnvState:
    """Checkpoint hooks of a collector whose envs live in Ray actors: their env states are not
    saved, so a resumed run starts fresh episodes (as on Gymnasium envs)."""

    def env_state(self) -> None:
        return None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> bool:
        return False


class RayCollector(NoEnvState):
    """Collector's interface (collect, collect_episodes, reset, state tensors) backed by Ray actors."""

    def __init__(self, algo, ray, num_workers: int, envs_per_worker: int):
        self.algo, self.ray = algo, ray
        self.num_workers, self.envs_per_worker = num_workers, envs_per_worker
        self.spec = worker_spec(algo, envs_per_worker)
        self.group = WorkerGroup(ray, RolloutWorker, self.spec, num_workers, "rollout")

    @property
    def num_envs(self) -> int:
        return self.num_workers * self.envs_per_worker

    def reset(self, seed: int | None = None) -> None:
        """Fresh episodes everywhere: env i of worker w seeded with seed + w*M + i (default seed*1000)."""
        base = self.algo.seed * 1000 if seed is None else seed
        self.group.get_all([self.group.submit(rank, "reset", self.spec.worker_seed(rank, base))
                            for rank in range(self.num_workers)])

    # -- collection ---------------------------------------------------------------------------
    def _weights(self) -> dict[str, Any]:
        weights: dict[str, Any] = {
            "policy": {k: v.detach().cpu() for k, v in self.algo.policy.state_dict().items()}
        }
        if self.algo.obs_normalizer is not None:
            weights["obs_stats"] = {k: v.cpu() for k, v in self.algo.obs_normalizer.stats.state_dict().items()}
        return weights

    def _gather(self, n_steps: int | None, max_steps: int | None) -> Rollout:
        weights = self.ray.put(self._weights())  # once per iteration; every actor reads the same object
        refs = [self.group.submit(rank, "collect", weights, n_steps, max_steps) for rank in range(self.num_workers)]
        parts: list[WorkerRollout] = self.group.get_all(refs)  # a lost rollout is collected again, never dropped
        if self.algo.obs_normalizer is not None:
            for part in parts:
                merge_moments(self.algo.obs_normalizer.stats, *part.obs_moments)
        return concat_rollouts([part.rollout for part in parts], self.algo.device)

    @torch.no_grad()
    def collect(self, n_steps: int) -> Rollout:
        """n_steps steps of every env of every worker: a Rollout [n_steps, K*M]."""
        return self._gather(n_steps, None)

    @torch.no_grad()
    def collect_episodes(self, max_steps: int) -> Rollout:
        """One whole episode of every env of every worker (Collector.collect_episodes on each)."""
        return self._gather(None, max_steps)

    def metrics(self) -> dict[str, float]:
        return {"ray/restarts": float(self.group.restarts), "ray/workers": float(self.num_workers)}

    def close(self) -> None:
        self.group.close()


class PendingCollector(NoEnvState):
    """Stands in for the RayCollector while no Ray runs (before ``learn_on_ray``, between runs).

    A checkpoint loaded into the model resets it with the resumed run's seed; the RayCollector
    created when training starts reseeds its workers with that seed.  It saves no env state.
    """

    def __init__(self):
        self.seed: int | None = None

    def reset(self, seed: int | None = None) -> None:
        self.seed = seed

    def _not_started(self, *args, **kwargs):
        raise RuntimeError("this model collects on Ray: train it with pgrl.distributed.learn_on_ray")

    collect = collect_episodes = _not_started
