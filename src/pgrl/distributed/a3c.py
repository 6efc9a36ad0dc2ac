"""Asynchronous A3C on Ray: gradient actors, one learner that applies gradients as they arrive.

Each of the K actors owns M envs and a policy copy.  One call ``compute(weights, version)``
loads the weights the learner sent, collects n_steps x M transitions (episodes continue), and
returns the gradient of A3C's own loss (``pgrl.algos.a3c.a3c_loss``: n-step or GAE targets
from the same weights, clipped per optimizer group as the Hogwild workers do) tagged with the
weights' version.  The learner waits for whichever gradient comes first (``ray.wait``),
applies it with the model's optimizers (Adam or RMSprop, one learner: no shared memory
needed), then puts the fresh weights into the object store once and sends that reference to
every actor whose gradient it just took.

Staleness = learner version now - version the gradient was computed at (each applied gradient
is one version).  With K workers it is about K - 1.  A gradient staler than ``max_staleness``
(default 2 x K) is dropped, not applied (its env steps still count toward the budget, since
they were taken); the worker gets fresh weights.  Logged per row: ``async/staleness_mean`` and
``async/staleness_max`` of the applied gradients, ``async/dropped`` (total), ``ray/restarts``.

A lost actor (killed, crashed node) is restarted by Ray and its call sent again with the
newest weights; no gradient is lost silently.  The learner is a runner over RunLog (pgrl.loops.rows):
it stops at the budget, at ``target_return`` (mean of the last 100 training episodes) or when
the callback returns False, and writes checkpoints (model and optimizer moments) when they are
due; a resumed run continues from one with fresh actors and episodes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from pgrl.algos.common import set_learning_rate
from pgrl.distributed.collector import worker_spec
from pgrl.distributed.pool import WorkerGroup
from pgrl.distributed.workers import Gradients, GradientWorker
from pgrl.errors import TrainingError
from pgrl.loops.rows import RunLog

WAIT_S = 0.25


def weights_of(model) -> dict:
    return {"policy": {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}}


class _Rows:
    """Metrics of the gradients applied since the last row."""

    def __init__(self):
        self.keys: list[str] = []
        self.clear()

    def clear(self) -> None:
        self.sums: dict[str, float] = {}
        self.updates = 0
        self.staleness: list[int] = []

    def add(self, metrics: dict[str, float], staleness: int) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            if key not in self.keys:
                self.keys.append(key)
        self.updates += 1
        self.staleness.append(staleness)

    def summary(self) -> dict[str, float]:
        row = {key: self.sums.get(key, math.nan) / max(self.updates, 1) for key in self.keys}
        row["async/staleness_mean"] = sum(self.staleness) / len(self.staleness) if self.staleness else math.nan
        row["async/staleness_max"] = float(max(self.staleness)) if self.staleness else math.nan
        return row


def learn_a3c(model, ray, max_staleness: int, total_timesteps: int | None = None, *, progress_bar: bool = False,
              log_dir: str | Path | None = None, callback=None, checkpointer=None,
              resume_state: dict[str, Any] | None = None):
    """Train ``model`` (an A3C) with ``model.config.n_workers`` Ray actors; see the module docstring."""
    c = model.config
    log = RunLog(model, model.budget(total_timesteps), log_dir=log_dir, progress_bar=progress_bar,
                 callback=callback, checkpointer=checkpointer, resume_state=resume_state,
                 target_return=getattr(c, "target_return", None))
    params = list(model.policy.parameters())
    optimizers, schedules = model.optimizer_list(), model.schedules()
    rows = _Rows()
    version, dropped = 0, 0
    group = None
    model.policy.train()
    try:
        group = WorkerGroup(ray, GradientWorker, worker_spec(model, c.n_envs), c.n_workers, model.name)
        model.worker_pids = list(group.pids)
        weights = ray.put(weights_of(model))
        pending = {group.submit(rank, "compute", weights, version) for rank in range(c.n_workers)}
        stop = False
        while pending and not stop:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
            if ready:  # take every gradient that has arrived, not only the first
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            answered: list[int] = []
            for ref in ready:
                pending.discard(ref)
                try:
                    result: Gradients = ray.get(ref)
                except group.actor_errors as exc:
                    rank = group.forget(ref)
                    group.record_loss(rank, exc)
                    answered.append(rank)  # sent again below, with the newest weights
                    continue
                except group.task_errors as exc:
                    group.raise_task_error(ref, exc)
                answered.append(group.answered(ref))
                staleness = version - result.version
                if staleness > max_staleness:
                    dropped += 1
                else:
                    progress_remaining = log.progress_remaining()
                    for optimizer, schedule in zip(optimizers, schedules, strict=True):
                        set_learning_rate(optimizer, schedule(progress_remaining))
                    for param, grad in zip(params, result.grads, strict=True):
                        param.grad = grad
                    for optimizer in optimizers:
                        optimizer.step()
                    version += 1
                    result.metrics["train/learning_rate"] = optimizers[0].param_groups[0]["lr"]
                    rows.add(result.metrics, staleness)
                model.num_timesteps += result.steps
                log.add_episodes(result.episode_returns, result.episode_lengths)
            if answered and not all(torch.isfinite(p).all() for p in params):
                raise TrainingError(f"a3c parameters became non-finite at step {model.num_timesteps}; lower "
                                    "learning_rate or max_grad_norm, or turn on normalize_reward")
            metrics = None
            if rows.keys:  # rows wait for the first applied gradient: the CSV's columns come from it
                metrics = {**rows.summary(), "async/dropped": float(dropped), "ray/restarts": float(group.restarts)}
            keep_going = True
            if answered:  # a callback's _on_step runs once per batch of gradients (the envs are the actors')
                log.rollout_start(None)
                keep_going = log.rollout_end(0)
            stop = not log.step(metrics) or log.done or not keep_going
            if log.last_row_step == model.num_timesteps:
                rows.clear()
            if not stop and answered:
                weights = ray.put(weights_of(model))  # once, for every actor that answered
                pending.update(group.submit(rank, "compute", weights, version) for rank in answered)
        log.end_training()
    finally:
        if group is not None:
            group.close()
        model.async_stats = {"version": version, "dropped": dropped,
                             "restarts": group.restarts if group is not None else 0}
        model.policy.eval()
        log.close()
    return model
